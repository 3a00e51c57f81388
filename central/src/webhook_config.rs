//! `[[webhook]]` in central.toml: where central posts its events for integrations, which
//! events, and the secret that signs them. Checked when the configuration is loaded, so a bad
//! URL, an unknown event name or an unreadable secret stops central with a message.
//!
//! ```toml
//! [[webhook]]
//! url = "https://integrations.example/convoy"
//! events = ["alarm", "unit", "retrieval"]
//! secret_file = "/etc/convoy/webhook-secret"   # optional; relative to central.toml's folder
//! ```

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The events a webhook may ask for: the names of `GET /api/stream`'s events, with the same
/// data (`alarm`: an alarm raised or changed; `unit`: a unit connected or went away;
/// `retrieval`: a retrieval finished).
pub const EVENT_NAMES: [&str; 3] = ["alarm", "unit", "retrieval"];

/// The longest secret file read, in bytes.
const MAX_SECRET: u64 = 4096;

/// `[[webhook]]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Where to `POST` each event (`http://` or `https://`); also the webhook's name in
    /// `GET /api/webhooks`, so each URL may appear once.
    pub url: String,
    /// Which events (see [`EVENT_NAMES`]).
    pub events: Vec<String>,
    /// A file holding the secret that signs each body (`X-Convoy-Signature`), surrounding
    /// whitespace removed; a relative path is taken from central.toml's folder. Without it,
    /// deliveries are not signed.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
}

/// A checked webhook, its secret read.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Where to post.
    pub url: reqwest::Url,
    /// The events it wants.
    pub events: BTreeSet<String>,
    /// The signing secret, if any.
    pub secret: Option<Vec<u8>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("url", &self.url.as_str())
            .field("events", &self.events)
            .field("secret", &self.secret.as_ref().map(|_| "…"))
            .finish()
    }
}

impl Webhook {
    /// Whether it wants events named `name`.
    pub fn wants(&self, name: &str) -> bool {
        self.events.contains(name)
    }
}

/// Checks every `[[webhook]]` and reads their secrets; `base` is the folder relative
/// `secret_file` paths start from. The error says which webhook and what to do.
pub fn load(webhooks: &[WebhookConfig], base: &Path) -> Result<Vec<Webhook>, String> {
    let mut out: Vec<Webhook> = Vec::with_capacity(webhooks.len());
    for w in webhooks {
        let hook = check(w, base).map_err(|e| format!("[[webhook]] url = {:?}: {e}", w.url))?;
        if out.iter().any(|o| o.url == hook.url) {
            return Err(format!("[[webhook]] url = {:?} is configured twice; list each URL once", w.url));
        }
        out.push(hook);
    }
    Ok(out)
}

fn check(w: &WebhookConfig, base: &Path) -> Result<Webhook, String> {
    let url = reqwest::Url::parse(&w.url)
        .map_err(|e| format!("not a URL ({e}); write it as http://HOST:PORT/PATH or https://…"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err("the URL must start with http:// or https:// and name a host".into());
    }
    if w.events.is_empty() {
        return Err(format!("events is empty; name at least one of {}", EVENT_NAMES.join(", ")));
    }
    let mut events = BTreeSet::new();
    for e in &w.events {
        if !EVENT_NAMES.contains(&e.as_str()) {
            return Err(format!("unknown event {e:?}; the events are {}", EVENT_NAMES.join(", ")));
        }
        events.insert(e.clone());
    }
    let secret = match &w.secret_file {
        None => None,
        Some(file) => Some(read_secret(&base.join(file))?),
    };
    Ok(Webhook { url, events, secret })
}

fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_SECRET + 1).read_to_end(&mut bytes))
        .map_err(|e| format!("cannot read secret_file {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SECRET {
        return Err(format!("secret_file {} is longer than {MAX_SECRET} bytes", path.display()));
    }
    let secret = bytes.trim_ascii();
    if secret.is_empty() {
        return Err(format!("secret_file {} is empty; put a random secret in it", path.display()));
    }
    Ok(secret.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(url: &str, events: &[&str], secret_file: Option<&str>) -> WebhookConfig {
        WebhookConfig {
            url: url.into(),
            events: events.iter().map(|e| e.to_string()).collect(),
            secret_file: secret_file.map(Into::into),
        }
    }

    #[test]
    fn a_good_webhook_loads_with_its_secret_trimmed_and_relative_to_the_base() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret"), "  s3cret\n").unwrap();
        let hooks = load(&[hook("https://example.org/hook", &["alarm", "unit"], Some("secret"))], dir.path()).unwrap();
        assert_eq!(hooks[0].url.as_str(), "https://example.org/hook");
        assert_eq!(hooks[0].secret.as_deref(), Some(&b"s3cret"[..]));
        assert!(hooks[0].wants("alarm") && hooks[0].wants("unit") && !hooks[0].wants("retrieval"));
        assert!(!format!("{:?}", hooks[0]).contains("s3cret"), "the secret stays out of logs");
        let unsigned = load(&[hook("http://127.0.0.1:9/x", &["retrieval"], None)], dir.path()).unwrap();
        assert_eq!(unsigned[0].secret, None);
    }

    #[test]
    fn mistakes_are_refused_with_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        for (w, says) in [
            (hook("example.org/hook", &["alarm"], None), "not a URL"),
            (hook("ftp://example.org/hook", &["alarm"], None), "http:// or https://"),
            (hook("http://x/", &["alarm", "unit_online"], None), "unknown event \"unit_online\""),
            (hook("http://x/", &[], None), "events is empty"),
            (hook("http://x/", &["alarm"], Some("missing")), "cannot read secret_file"),
            (hook("http://x/", &["alarm"], Some("empty")), "is empty"),
        ] {
            let e = load(std::slice::from_ref(&w), dir.path()).unwrap_err();
            assert!(e.contains(says) && e.contains(&w.url), "{w:?}: {e}");
        }
        let twice = [hook("http://x/", &["alarm"], None), hook("http://x/", &["unit"], None)];
        assert!(load(&twice, dir.path()).unwrap_err().contains("twice"));
    }
}

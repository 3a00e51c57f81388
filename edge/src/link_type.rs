//! The unit's link type: what kind of link it has to central and whether that link is
//! metered, as the OS's connection manager says it in a small file (`[central] link_file`),
//! or fixed in the configuration (`[central] link`).
//!
//! The file holds one line: a kind (`wifi`, `cellular`, `ethernet`, `satellite` or
//! `unknown`), optionally followed by `metered` or `unmetered`; without it, cellular and
//! satellite count as metered and the others not. The unit reads it every second and reports
//! each change to central (`EdgeMessage::LinkInfo`), whose link policy follows it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use protocol::interconnect::LinkKind;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::status::UnitStatus;

/// How often the link file is read.
pub const POLL: Duration = Duration::from_secs(1);

/// The unit's link: its kind and whether it is metered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitLink {
    /// The kind of link.
    pub kind: LinkKind,
    /// Whether its traffic costs per byte.
    pub metered: bool,
}

/// A link line that cannot be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LinkTypeError {
    /// The line is empty.
    #[error("empty: expected a link kind (wifi, cellular, ethernet, satellite or unknown)")]
    Empty,
    /// The first word is not a known kind.
    #[error("unknown link kind {0:?}: expected wifi, cellular, ethernet, satellite or unknown")]
    Kind(String),
    /// The second word is neither `metered` nor `unmetered`, or more words follow.
    #[error("{0:?} after the link kind: expected nothing, metered or unmetered")]
    Trailing(String),
}

impl UnitLink {
    /// Parses a line such as `cellular`, `wifi metered` or `ethernet unmetered`.
    pub fn parse(line: &str) -> Result<UnitLink, LinkTypeError> {
        let mut words = line.split_whitespace();
        let kind = words.next().ok_or(LinkTypeError::Empty)?;
        let kind = LinkKind::from_name(&kind.to_ascii_lowercase()).ok_or_else(|| LinkTypeError::Kind(kind.into()))?;
        let rest: Vec<&str> = words.collect();
        let metered = match rest.as_slice() {
            [] => kind.metered_by_default(),
            [w] if w.eq_ignore_ascii_case("metered") => true,
            [w] if w.eq_ignore_ascii_case("unmetered") => false,
            _ => return Err(LinkTypeError::Trailing(rest.join(" "))),
        };
        Ok(UnitLink { kind, metered })
    }

    /// The link as `/api/status` shows it.
    pub fn json(self) -> LinkJson {
        LinkJson { kind: self.kind.as_str(), metered: self.metered }
    }
}

/// `"link"` in `GET /api/status`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkJson {
    /// `unknown`, `ethernet`, `wifi`, `cellular` or `satellite`.
    pub kind: &'static str,
    /// Whether the link is metered.
    pub metered: bool,
}

/// Where the unit learns its link: the file, else the fixed value.
#[derive(Debug, Clone)]
pub struct LinkSource {
    /// `[central] link_file`.
    pub file: Option<PathBuf>,
    /// `[central] link`, used while there is no file (or none configured).
    pub fixed: Option<UnitLink>,
}

impl LinkSource {
    /// The link now: the file's line when it can be read and understood, else the fixed value
    /// (a file that cannot be understood is logged once per distinct problem by the caller).
    pub fn read(&self) -> (Option<UnitLink>, Option<String>) {
        let Some(file) = &self.file else { return (self.fixed, None) };
        match std::fs::read_to_string(file) {
            Ok(text) => match UnitLink::parse(text.lines().next().unwrap_or("")) {
                Ok(link) => (Some(link), None),
                Err(e) => (self.fixed, Some(format!("link file {}: {e}", file.display()))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (self.fixed, None),
            Err(e) => (self.fixed, Some(format!("cannot read link file {}: {e}", file.display()))),
        }
    }

    /// Keeps `status`'s link up to date, reading every [`POLL`], until `shutdown`.
    pub async fn watch(self, status: Arc<UnitStatus>, shutdown: CancellationToken) {
        let mut problem = None;
        loop {
            let (link, error) = self.read();
            if error.is_some() && error != problem {
                tracing::warn!("{}", error.as_deref().unwrap_or_default());
            }
            problem = error;
            if status.set_link(link) {
                match link {
                    Some(l) => tracing::info!(link = l.kind.as_str(), metered = l.metered, "link type"),
                    None => tracing::info!("link type unknown"),
                }
            }
            tokio::select! {
                () = tokio::time::sleep(POLL) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_have_their_default_metering_and_a_word_overrides_it() {
        let p = |s| UnitLink::parse(s).map(|l| (l.kind, l.metered));
        assert_eq!(p("cellular"), Ok((LinkKind::Cellular, true)));
        assert_eq!(p("satellite\n"), Ok((LinkKind::Satellite, true)));
        assert_eq!(p("wifi"), Ok((LinkKind::Wifi, false)));
        assert_eq!(p("  ethernet "), Ok((LinkKind::Ethernet, false)));
        assert_eq!(p("unknown"), Ok((LinkKind::Unknown, false)));
        assert_eq!(p("wifi metered"), Ok((LinkKind::Wifi, true)));
        assert_eq!(p("Cellular Unmetered"), Ok((LinkKind::Cellular, false)));
        assert_eq!(p(""), Err(LinkTypeError::Empty));
        assert_eq!(p("lte"), Err(LinkTypeError::Kind("lte".into())));
        assert_eq!(p("wifi free"), Err(LinkTypeError::Trailing("free".into())));
        assert_eq!(p("wifi metered now"), Err(LinkTypeError::Trailing("metered now".into())));
    }

    #[test]
    fn the_file_wins_and_the_fixed_value_stands_in_without_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("link");
        let cellular = UnitLink::parse("cellular").unwrap();
        let source = LinkSource { file: Some(file.clone()), fixed: Some(cellular) };
        assert_eq!(source.read(), (Some(cellular), None), "no file yet");
        std::fs::write(&file, "wifi\n").unwrap();
        assert_eq!(source.read().0, Some(UnitLink { kind: LinkKind::Wifi, metered: false }));
        std::fs::write(&file, "modem\n").unwrap();
        let (link, error) = source.read();
        assert_eq!(link, Some(cellular));
        assert!(error.unwrap().contains("unknown link kind \"modem\""));
        let none = LinkSource { file: None, fixed: None };
        assert_eq!(none.read(), (None, None));
    }
}

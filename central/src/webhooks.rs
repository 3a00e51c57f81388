//! Outgoing webhooks: central posts its events to the `[[webhook]]`s of central.toml (see
//! [`crate::webhook_config`]), for integrations that would rather be told than poll.
//!
//! The events are those of `GET /api/stream` (`alarm`, `unit`, `retrieval`) with the same data.
//! Each becomes one delivery per webhook that wants it, written to the durable outbox
//! ([`crate::webhook_outbox`]) first; a worker per webhook posts them, oldest due first:
//!
//! ```text
//! POST <url>
//! Content-Type: application/json
//! X-Convoy-Event: alarm
//! X-Convoy-Delivery: 3f2a…            (the same at every attempt: receivers drop repeats)
//! X-Convoy-Signature: sha256=<hex>    (HMAC-SHA256 of the body with the secret, if configured)
//!
//! {"id": "3f2a…", "event": "alarm", "time": "2026-11-26T10:00:00Z", "data": {…}}
//! ```
//!
//! Any 2xx answer delivers it; anything else (no answer within 10 s, a refused connection, a
//! non-2xx status) is retried after an exponential backoff with jitter ([`backoff`]), also
//! after a restart of central, until three days after it was queued, when it is given up. An
//! event that happens while central is stopping may be lost: a delivery is durable once queued.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Sha256;
use tokio::sync::Notify;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use crate::enrollment::now_us;
use crate::fleet::Fleet;
use crate::live_events::{LiveEvent, LiveEvents};
use crate::time::rfc3339;
use crate::webhook_config::Webhook;
use crate::webhook_outbox::{Delivery, Outbox, OutboxError};

/// The first retry waits about this long (half to all of it).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// No retry waits longer than this.
pub const MAX_RETRY: Duration = Duration::from_secs(300);
/// A delivery is given up this long after it was queued.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// How often the fleet is looked at for units coming and going (as `GET /api/stream` does).
const FLEET_CHECK: Duration = Duration::from_secs(1);

/// The `X-Convoy-Signature` value for `body`: `sha256=` and the lowercase hex HMAC-SHA256 of
/// the body's bytes with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key"));
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// How long to wait before the next attempt after `failures` failed ones (at least 1):
/// [`FIRST_RETRY`] doubled with each further failure, at most [`MAX_RETRY`], times a factor
/// between ½ and 1 from `jitter` (in `[0, 1)`), so that many deliveries failing together do
/// not come back together.
pub fn backoff(failures: u32, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    let full = FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY);
    full.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0))
}

/// A fresh delivery id: 128 random bits in hex.
fn delivery_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: unique enough from the clock and a counter.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        bytes[..8].copy_from_slice(&now_us().to_be_bytes());
        bytes[8..].copy_from_slice(&n.to_be_bytes());
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A webhook as `GET /api/webhooks` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookStatus {
    /// Where it posts.
    pub url: String,
    /// The events it wants.
    pub events: Vec<String>,
    /// Whether deliveries are signed.
    pub signed: bool,
    /// Deliveries waiting (due now or retrying later).
    pub queued: u64,
    /// The HTTP status of the last attempt (null before any, or when there was no answer).
    pub last_status: Option<u16>,
    /// Why the last attempt failed (null once one succeeded).
    pub last_error: Option<String>,
    /// When the last attempt was made.
    pub last_attempt: Option<String>,
    /// When the last delivery succeeded.
    pub last_delivered: Option<String>,
    /// Deliveries made.
    pub delivered: u64,
    /// Deliveries given up.
    pub dropped: u64,
    /// The oldest waiting delivery.
    pub next: Option<NextDelivery>,
}

/// The oldest waiting delivery in [`WebhookStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct NextDelivery {
    /// Its `X-Convoy-Delivery` id.
    pub id: String,
    /// Its event.
    pub event: String,
    /// Attempts that failed.
    pub attempts: u32,
    /// When it is tried next.
    pub due: String,
}

/// The configured webhooks and their outbox.
pub struct Webhooks {
    hooks: Vec<(Webhook, Notify)>,
    outbox: Arc<Outbox>,
    client: reqwest::Client,
}

/// Why the webhooks could not start.
#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    /// The outbox.
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The HTTP client.
    #[error("cannot make the webhooks' HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

impl Webhooks {
    /// Opens the outbox in `dir` for `hooks`; deliveries queued for webhooks no longer
    /// configured are dropped (and logged).
    pub fn open(hooks: Vec<Webhook>, dir: &Path) -> Result<Webhooks, WebhooksError> {
        let outbox = Outbox::open(dir)?;
        let urls: Vec<&str> = hooks.iter().map(|h| h.url.as_str()).collect();
        for (url, n) in outbox.forget_except(&urls)? {
            tracing::warn!(url, deliveries = n, "dropped deliveries to a webhook no longer in central.toml");
        }
        let client = reqwest::Client::builder().timeout(TIMEOUT).user_agent("convoy-central").build()?;
        Ok(Webhooks {
            hooks: hooks.into_iter().map(|h| (h, Notify::new())).collect(),
            outbox: Arc::new(outbox),
            client,
        })
    }

    /// Queues event `name` with `data` for every webhook that wants it.
    pub async fn enqueue(&self, name: &'static str, data: Value) {
        let wanting: Vec<String> =
            self.hooks.iter().filter(|(h, _)| h.wants(name)).map(|(h, _)| h.url.to_string()).collect();
        if wanting.is_empty() {
            return;
        }
        let outbox = self.outbox.clone();
        let now = now_us();
        let queued = tokio::task::spawn_blocking(move || {
            for url in &wanting {
                let id = delivery_id();
                let body = json!({ "id": id, "event": name, "time": rfc3339(now), "data": data }).to_string();
                outbox.enqueue(&id, url, name, &body, now)?;
            }
            Ok::<_, OutboxError>(())
        })
        .await;
        match queued {
            Ok(Ok(())) => {
                for (h, wake) in &self.hooks {
                    if h.wants(name) {
                        wake.notify_one();
                    }
                }
            }
            Ok(Err(e)) => tracing::error!(event = name, "cannot queue a webhook delivery: {e}"),
            Err(e) => tracing::error!(event = name, "cannot queue a webhook delivery: {e}"),
        }
    }

    /// Starts queueing `live`'s events and the fleet's units coming and going, and a worker
    /// per webhook; all stop at `shutdown`.
    pub fn start(self: &Arc<Self>, live: &LiveEvents, fleet: Arc<Fleet>, shutdown: CancellationToken) {
        if self.hooks.is_empty() {
            return;
        }
        tokio::spawn(self.clone().produce(live.subscribe_local(), fleet, shutdown.clone()));
        for i in 0..self.hooks.len() {
            tokio::spawn(self.clone().work(i, shutdown.clone()));
        }
    }

    /// Every webhook's state, in configuration order.
    pub async fn status(&self) -> Result<Vec<WebhookStatus>, OutboxError> {
        let outbox = self.outbox.clone();
        let hooks: Vec<(String, Vec<String>, bool)> = self
            .hooks
            .iter()
            .map(|(h, _)| (h.url.to_string(), h.events.iter().cloned().collect(), h.secret.is_some()))
            .collect();
        tokio::task::spawn_blocking(move || {
            hooks
                .into_iter()
                .map(|(url, events, signed)| {
                    let s = outbox.status(&url)?;
                    Ok(WebhookStatus {
                        url,
                        events,
                        signed,
                        queued: s.queued,
                        last_status: s.last_status,
                        last_error: s.last_error,
                        last_attempt: s.last_attempt_us.map(rfc3339),
                        last_delivered: s.last_delivered_us.map(rfc3339),
                        delivered: s.delivered,
                        dropped: s.dropped,
                        next: s.oldest.map(|(id, event, attempts, due)| NextDelivery {
                            id,
                            event,
                            attempts,
                            due: rfc3339(due),
                        }),
                    })
                })
                .collect()
        })
        .await
        .unwrap_or_else(|e| Err(OutboxError::Task(e.to_string())))
    }

    /// Turns published events and units coming and going into deliveries.
    async fn produce(
        self: Arc<Self>,
        mut rx: tokio::sync::broadcast::Receiver<LiveEvent>,
        fleet: Arc<Fleet>,
        shutdown: CancellationToken,
    ) {
        let mut online: BTreeSet<String> = fleet.connected().into_iter().collect();
        let mut tick = tokio::time::interval(FLEET_CHECK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                got = rx.recv() => match got {
                    Ok(e) => self.enqueue(e.name(), e.data()).await,
                    Err(RecvError::Lagged(n)) => tracing::warn!(missed = n, "webhooks fell behind central's events"),
                    Err(RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    let now: BTreeSet<String> = fleet.connected().into_iter().collect();
                    for unit in now.difference(&online) {
                        let e = LiveEvent::Unit { unit: unit.clone(), online: true };
                        self.enqueue(e.name(), e.data()).await;
                    }
                    for unit in online.difference(&now) {
                        let e = LiveEvent::Unit { unit: unit.clone(), online: false };
                        self.enqueue(e.name(), e.data()).await;
                    }
                    online = now;
                }
            }
        }
    }

    /// Delivers webhook `i`'s queue until `shutdown`.
    async fn work(self: Arc<Self>, i: usize, shutdown: CancellationToken) {
        let (hook, wake) = &self.hooks[i];
        let url = hook.url.to_string();
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let outbox = self.outbox.clone();
            let u = url.clone();
            let next = tokio::task::spawn_blocking(move || {
                let now = now_us();
                Ok::<_, OutboxError>((outbox.next_due(&u, now)?, outbox.earliest_due(&u)?, now))
            })
            .await;
            let (due, earliest, now) = match next {
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    tracing::error!(url, "{e}");
                    (None, Some(now_us() + 5_000_000), now_us())
                }
                Err(e) => {
                    tracing::error!(url, "{e}");
                    return;
                }
            };
            if let Some(d) = due {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = self.attempt(hook, d) => {}
                }
                continue;
            }
            let wait = earliest.map_or(Duration::from_secs(60), |at| {
                Duration::from_micros(at.saturating_sub(now).max(0) as u64).min(Duration::from_secs(60))
            });
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// One attempt at `d`; records the outcome.
    async fn attempt(&self, hook: &Webhook, d: Delivery) {
        let mut request = self
            .client
            .post(hook.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("X-Convoy-Event", &d.event)
            .header("X-Convoy-Delivery", &d.id);
        if let Some(secret) = &hook.secret {
            request = request.header("X-Convoy-Signature", signature(secret, d.body.as_bytes()));
        }
        let outcome = match request.body(d.body.clone()).send().await {
            Ok(r) if r.status().is_success() => Ok(r.status().as_u16()),
            Ok(r) => Err((Some(r.status().as_u16()), format!("the receiver answered {}", r.status()))),
            Err(e) => Err((None, error_chain(&e))),
        };
        let outbox = self.outbox.clone();
        let now = now_us();
        let recorded = tokio::task::spawn_blocking(move || match outcome {
            Ok(status) => {
                tracing::debug!(url = d.url, id = d.id, status, "webhook delivered");
                outbox.delivered(&d, status, now)
            }
            Err((status, error)) => {
                let failures = d.attempts.saturating_add(1);
                let wait = backoff(failures, fastrand::f64());
                let retry = now.saturating_add(wait.as_micros() as i64);
                let give_up = retry - d.created_us > GIVE_UP_AFTER.as_micros() as i64;
                if give_up {
                    tracing::error!(
                        url = d.url,
                        id = d.id,
                        "webhook delivery given up after {failures} attempts: {error}"
                    );
                } else {
                    tracing::warn!(
                        url = d.url,
                        id = d.id,
                        failures,
                        retry_in_s = wait.as_secs_f32(),
                        "webhook delivery failed: {error}"
                    );
                }
                outbox.failed(&d, status, &error, now, (!give_up).then_some(retry))
            }
        })
        .await;
        match recorded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("{e}"),
        }
    }
}

/// An error with its causes: reqwest's own message alone ("error sending request") hides why.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(
            signature(b"Jefe", b"what do ya want for nothing!"),
            signature(b"Jefe", b"what do ya want for nothing?")
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_growing() {
        assert_eq!(backoff(1, 0.0), Duration::from_millis(500));
        assert_eq!(backoff(1, 0.999_999).as_millis(), 999);
        assert_eq!(backoff(2, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(4));
        assert_eq!(backoff(30, 0.0), MAX_RETRY / 2);
        assert_eq!(backoff(u32::MAX, 1.0), MAX_RETRY);
        assert_eq!(backoff(0, 0.0), backoff(1, 0.0), "the first retry whatever is asked");
        for failures in 1..40 {
            for jitter in [0.0, 0.3, 0.7, 0.99] {
                let d = backoff(failures, jitter);
                assert!(d >= backoff(failures, 0.0) && d <= MAX_RETRY, "{failures} {jitter}: {d:?}");
                assert!(backoff(failures + 1, jitter) >= d, "never shorter after another failure");
            }
        }
    }

    #[test]
    fn delivery_ids_are_128_bits_of_hex_and_differ() {
        let (a, b) = (delivery_id(), delivery_id());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}

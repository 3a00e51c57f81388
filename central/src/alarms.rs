//! Alarms: each event a unit sends becomes an alarm in the catalog (part `alarms`: `alarms.db`
//! on SQLite, or the PostgreSQL database several central nodes share; table `alarm`, keyed by
//! unit and the unit's event id), which operators take through `new` → `in_progress` →
//! `closed` from any node; the row keeps who changed it last, when, and their comment.
//!
//! Every write first takes the one row of `alarm_clock` (`UPDATE … SET n = n + 1 RETURNING
//! n`) and stamps the rows it writes with that number (`change_seq`). The row lock makes alarm
//! writers take turns, across nodes too, so numbers commit in order: a node that has seen
//! every change up to N has missed none below it ([`Alarms::changed_since`], which
//! [`crate::alarm_poll`] uses to tell each node's open pages of the other nodes' changes).
//! Raising is idempotent per event (`ON CONFLICT DO NOTHING`), and a state change that lost a
//! race to another operator is refused ([`ChangeError::Taken`]), never written over.
//!
//! Two id spaces share the key: a unit's own events have positive ids (the unit's, always at
//! least 1), and events sent to central's generic-events ingest (`POST /api/events`) get
//! negative ones, -1, -2, … in the order central takes them, one sequence over all units. The
//! two can never collide, and both stay exact in JavaScript.

use std::path::Path;
use std::sync::Arc;

use protocol::sync::RemoteEvent;
use serde::Serialize;

use crate::alarm_writes::AlarmWrites;
use crate::catalog::{CatalogDb, CatalogError, CatalogLocation, Migration, Row, Schema, Tx, Value};
use crate::time::rfc3339;

/// Where an alarm stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmState {
    /// Raised, nobody has taken it yet.
    New,
    /// An operator is on it (acknowledged).
    InProgress,
    /// Dealt with.
    Closed,
}

impl AlarmState {
    /// As stored and shown: `new`, `in_progress`, `closed`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::New => "new",
            AlarmState::InProgress => "in_progress",
            AlarmState::Closed => "closed",
        }
    }

    /// The state named `s`, if any.
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "new" => Some(AlarmState::New),
            "in_progress" => Some(AlarmState::InProgress),
            "closed" => Some(AlarmState::Closed),
            _ => None,
        }
    }
}

/// An alarm raised by a unit's event, as `GET /api/alarms` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alarm {
    /// The unit.
    pub unit: String,
    /// The unit's id for the event (positive), or central's for an ingested one (negative);
    /// with `unit`, the alarm's address in the API.
    pub event_id: i64,
    /// When it happened, RFC 3339.
    pub time: String,
    /// The cameras it concerns.
    pub cameras: Vec<String>,
    /// What happened (the event, as JSON).
    pub kind: serde_json::Value,
    /// `new`, `in_progress` or `closed`.
    pub state: AlarmState,
    /// Who last changed its state (`null` while new).
    pub changed_by: Option<String>,
    /// When, RFC 3339.
    pub changed_at: Option<String>,
    /// The operator's comment, if any.
    pub comment: Option<String>,
}

/// Why a state change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// No such alarm.
    #[error("no alarm {event_id} of unit {unit:?}")]
    NotFound {
        /// The unit.
        unit: String,
        /// The event id.
        event_id: i64,
    },
    /// Alarms move forward only (a closed alarm stays closed).
    #[error("the alarm is {from}; it cannot go back to {to}", from = .from.as_str(), to = .to.as_str())]
    Backwards {
        /// Its state now.
        from: AlarmState,
        /// The state asked for.
        to: AlarmState,
    },
    /// Another operator moved it to this state first (the loser of a race between two
    /// pages, or two nodes): nothing was written.
    #[error(
        "the alarm is already {state} (set by {by} at {at}); reload the alarm list to see its state",
        state = .state.as_str(), by = .by.as_deref().unwrap_or("nobody"), at = .at.as_deref().unwrap_or("an unknown time")
    )]
    Taken {
        /// Its state now.
        state: AlarmState,
        /// Who set it.
        by: Option<String>,
        /// When, RFC 3339.
        at: Option<String>,
    },
    /// The catalog failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// A state change an operator asks for.
#[derive(Debug, Clone)]
pub struct Change {
    /// `in_progress` or `closed` (or the same state again, to change the comment).
    pub state: AlarmState,
    /// Who.
    pub by: String,
    /// Their comment (kept when `None`).
    pub comment: Option<String>,
    /// When, µs since the Unix epoch.
    pub at_us: i64,
}

/// An event sent to central's generic-events ingest, about to become an alarm.
#[derive(Debug, Clone)]
pub struct Ingested {
    /// The unit it is about.
    pub unit: String,
    /// The camera it is about, if any.
    pub camera: Option<String>,
    /// When it happened, µs since the Unix epoch.
    pub time_us: i64,
    /// What happened, in a word (`door-forced`).
    pub name: String,
    /// Free text.
    pub message: String,
}

/// The alarm `kind` of an ingested event: the same shape as a unit's generic event
/// (`{"Generic": {"name", "detail"}}`), so pages and integrations read both alike.
pub fn ingested_kind(name: &str, message: &str) -> serde_json::Value {
    serde_json::json!({ "Generic": { "name": name, "detail": message } })
}

/// An alarm as another node (or this one) last wrote it, for [`Alarms::changed_since`].
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmChange {
    /// The alarm as it is now.
    pub alarm: Alarm,
    /// The number of the write that made it so.
    pub seq: i64,
    /// The node that wrote it ([`Alarms::node`]).
    pub node: String,
}

/// The alarms' part of the catalog.
pub const SCHEMA: Schema = Schema {
    part: "alarms",
    sqlite_file: "alarms.db",
    migrations: &[Migration {
        sqlite: "CREATE TABLE alarm (
                     unit TEXT NOT NULL, event_id INTEGER NOT NULL, time_us INTEGER NOT NULL,
                     cameras TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
                     changed_by TEXT, changed_us INTEGER, comment TEXT,
                     change_seq INTEGER NOT NULL, node TEXT NOT NULL, PRIMARY KEY (unit, event_id));
                 CREATE INDEX alarm_by_time ON alarm (time_us);
                 CREATE INDEX alarm_by_state_time ON alarm (state, time_us);
                 CREATE INDEX alarm_by_change ON alarm (change_seq);
                 CREATE TABLE alarm_clock (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
                 INSERT INTO alarm_clock (id, n) VALUES (1, 0);",
        postgres: "CREATE TABLE alarm (
                       unit TEXT NOT NULL, event_id BIGINT NOT NULL, time_us BIGINT NOT NULL,
                       cameras TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL,
                       changed_by TEXT, changed_us BIGINT, comment TEXT,
                       change_seq BIGINT NOT NULL, node TEXT NOT NULL, PRIMARY KEY (unit, event_id));
                   CREATE INDEX alarm_by_time ON alarm (time_us);
                   CREATE INDEX alarm_by_state_time ON alarm (state, time_us);
                   CREATE INDEX alarm_by_change ON alarm (change_seq);
                   CREATE TABLE alarm_clock (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
                   INSERT INTO alarm_clock (id, n) VALUES (1, 0);",
    }],
};

const COLUMNS: &str = "unit, event_id, time_us, cameras, kind, state, changed_by, changed_us, comment";

/// The alarm in a row of [`COLUMNS`] (JSON that does not decode reads as empty, as before).
fn from_row(r: &Row) -> Result<Alarm, CatalogError> {
    let cameras: String = r.get(3)?;
    let kind: String = r.get(4)?;
    let state: String = r.get(5)?;
    Ok(Alarm {
        unit: r.get(0)?,
        event_id: r.get(1)?,
        time: rfc3339(r.get(2)?),
        cameras: serde_json::from_str(&cameras).unwrap_or_default(),
        kind: serde_json::from_str(&kind).unwrap_or_default(),
        state: AlarmState::parse(&state).unwrap_or(AlarmState::New),
        changed_by: r.get(6)?,
        changed_at: r.get::<Option<i64>>(7)?.map(rfc3339),
        comment: r.get(8)?,
    })
}

/// Takes the next write number: the row lock every alarm writer waits for (see the module
/// documentation).
pub(crate) fn tick(tx: &mut Tx<'_>) -> Result<i64, CatalogError> {
    tx.query_one("UPDATE alarm_clock SET n = n + 1 WHERE id = 1 RETURNING n", &[])?.get(0)
}

fn get(tx: &mut Tx<'_>, unit: &str, event_id: i64) -> Result<Option<Alarm>, CatalogError> {
    let sql = format!("SELECT {COLUMNS} FROM alarm WHERE unit = $1 AND event_id = $2");
    tx.query_opt(&sql, &[unit.into(), event_id.into()])?.map(|r| from_row(&r)).transpose()
}

/// Inserts `unit`'s `events` as new alarms stamped `seq` (those it had already are left as
/// they are); the alarms that are new.
pub(crate) fn insert_events(
    tx: &mut Tx<'_>,
    unit: &str,
    events: &[RemoteEvent],
    seq: i64,
    node: &str,
) -> Result<Vec<Alarm>, CatalogError> {
    let sql = format!(
        "INSERT INTO alarm (unit, event_id, time_us, cameras, kind, state, change_seq, node)
         VALUES ($1, $2, $3, $4, $5, 'new', $6, $7) ON CONFLICT (unit, event_id) DO NOTHING RETURNING {COLUMNS}"
    );
    let mut added = Vec::new();
    for e in events {
        let kind = serde_json::to_string(&e.kind).unwrap_or_default();
        let cameras = serde_json::to_string(&e.cameras).unwrap_or_default();
        let params: [Value; 7] =
            [unit.into(), (e.id as i64).into(), e.time_us.into(), cameras.into(), kind.into(), seq.into(), node.into()];
        if let Some(row) = tx.query_opt(&sql, &params)? {
            added.push(from_row(&row)?);
        }
    }
    Ok(added)
}

/// Inserts an ingested alarm with the next negative id over all units, stamped `seq`.
pub(crate) fn insert_ingested(
    tx: &mut Tx<'_>,
    unit: &str,
    time_us: i64,
    cameras: &str,
    kind: &str,
    seq: i64,
    node: &str,
) -> Result<Alarm, CatalogError> {
    // Writers take turns at the clock row, so the lowest id read here is still the lowest
    // when the row is inserted, on any node.
    let sql = format!(
        "INSERT INTO alarm (unit, event_id, time_us, cameras, kind, state, change_seq, node)
         SELECT CAST($1 AS TEXT), COALESCE(MIN(event_id), 0) - 1, CAST($2 AS BIGINT), CAST($3 AS TEXT),
                CAST($4 AS TEXT), 'new', CAST($5 AS BIGINT), CAST($6 AS TEXT)
         FROM alarm WHERE event_id < 0 RETURNING {COLUMNS}"
    );
    let params: [Value; 6] = [unit.into(), time_us.into(), cameras.into(), kind.into(), seq.into(), node.into()];
    from_row(&tx.query_one(&sql, &params)?)
}

/// The alarms of every unit, in the catalog (see the module documentation).
pub struct Alarms {
    /// Writes: state changes, ingested events, and the group commit's batches.
    writer: Arc<CatalogDb>,
    /// Reads on a connection of their own, so they never queue behind a write (SQLite: WAL).
    reader: Arc<CatalogDb>,
    writes: AlarmWrites,
    node: String,
}

impl Alarms {
    /// Opens the alarms' part of the catalog at `at` as node `node` (a name unique to this
    /// process, see [`node_name`]) and carries over, once, the alarms an older central kept
    /// in `sync_db` (see [`crate::alarm_carry`]).
    pub fn open(at: &CatalogLocation, sync_db: &Path, node: &str) -> Result<Alarms, CatalogError> {
        let writer = Arc::new(CatalogDb::open(at, &SCHEMA)?);
        let carried = crate::alarm_carry::carry_over(&writer, sync_db, node)?;
        if carried > 0 {
            tracing::info!(alarms = carried, "carried the alarms of sync.db over to the catalog");
        }
        let reader = Arc::new(CatalogDb::open(at, &SCHEMA)?);
        let writes = AlarmWrites::start(writer.clone(), node.to_owned())
            .map_err(|e| CatalogError::Thread { part: SCHEMA.part, message: e.to_string() })?;
        Ok(Alarms { writer, reader, writes, node: node.to_owned() })
    }

    /// This node's name, as written beside each change it makes.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Stores a unit's events as new alarms (idempotent by event id, also across nodes), in
    /// the next group commit; the alarms that are new, once durable.
    pub async fn add(&self, unit: &str, events: Vec<RemoteEvent>) -> Result<Vec<Alarm>, CatalogError> {
        self.writes.add(unit.to_owned(), events).await
    }

    /// Stores an ingested event as a new alarm with the next negative id (see the module
    /// documentation of [`crate::alarms`]); the alarm.
    pub async fn add_ingested(&self, event: Ingested) -> Result<Alarm, CatalogError> {
        let (db, node) = (self.writer.clone(), self.node.clone());
        blocking(move || {
            let cameras = serde_json::to_string(&event.camera.iter().collect::<Vec<_>>()).unwrap_or_default();
            let kind = ingested_kind(&event.name, &event.message).to_string();
            db.transaction(|tx| {
                let seq = tick(tx)?;
                insert_ingested(tx, &event.unit, event.time_us, &cameras, &kind, seq, &node)
            })
        })
        .await?
    }

    /// The newest `limit` alarms, newest first, all or only those in `state` (read beside the
    /// writer, through the indexes `alarm_by_time` and `alarm_by_state_time`).
    pub async fn list(&self, state: Option<AlarmState>, limit: u32) -> Result<Vec<Alarm>, CatalogError> {
        let db = self.reader.clone();
        blocking(move || {
            let rows = match state {
                Some(s) => db.query(&list_sql(true), &[s.as_str().into(), limit.into()])?,
                None => db.query(&list_sql(false), &[limit.into()])?,
            };
            rows.iter().map(from_row).collect()
        })
        .await?
    }

    /// Moves alarm (`unit`, `event_id`) to `change.state`; the alarm as it is now. Forward
    /// only; the state it has already only by whoever set it (to change the comment), so of
    /// two operators acknowledging at once, on one node or two, one wins and the other is told
    /// [`ChangeError::Taken`].
    pub async fn change(&self, unit: &str, event_id: i64, change: Change) -> Result<Alarm, ChangeError> {
        let (db, node, unit) = (self.writer.clone(), self.node.clone(), unit.to_owned());
        blocking(move || {
            db.transaction(|tx| {
                let seq = tick(tx)?;
                let Some(now) = get(tx, &unit, event_id)? else {
                    return Err(ChangeError::NotFound { unit: unit.clone(), event_id });
                };
                if change.state < now.state {
                    return Err(ChangeError::Backwards { from: now.state, to: change.state });
                }
                if change.state == now.state && now.changed_by.as_deref() != Some(change.by.as_str()) {
                    return Err(ChangeError::Taken { state: now.state, by: now.changed_by, at: now.changed_at });
                }
                // Only from the state just read: the row lock settles a race the clock did not.
                let sql = format!(
                    "UPDATE alarm SET state = $3, changed_by = $4, changed_us = $5, comment = COALESCE($6, comment),
                         change_seq = $7, node = $8
                     WHERE unit = $1 AND event_id = $2 AND state = $9 RETURNING {COLUMNS}"
                );
                let params: [Value; 9] = [
                    unit.as_str().into(),
                    event_id.into(),
                    change.state.as_str().into(),
                    change.by.as_str().into(),
                    change.at_us.into(),
                    change.comment.clone().into(),
                    seq.into(),
                    node.as_str().into(),
                    now.state.as_str().into(),
                ];
                match tx.query_opt(&sql, &params)? {
                    Some(row) => Ok(from_row(&row)?),
                    None => {
                        let after = get(tx, &unit, event_id)?;
                        Err(ChangeError::Taken {
                            state: after.as_ref().map_or(now.state, |a| a.state),
                            by: after.as_ref().and_then(|a| a.changed_by.clone()),
                            at: after.and_then(|a| a.changed_at),
                        })
                    }
                }
            })
        })
        .await
        .map_err(ChangeError::from)?
    }

    /// The number of the last committed alarm write (where a new watcher starts).
    pub async fn last_seq(&self) -> Result<i64, CatalogError> {
        let db = self.reader.clone();
        blocking(move || db.query_one("SELECT n FROM alarm_clock WHERE id = 1", &[])?.get(0)).await?
    }

    /// Every alarm written after write number `after`, in write order, with the node that
    /// wrote it.
    pub async fn changed_since(&self, after: i64) -> Result<Vec<AlarmChange>, CatalogError> {
        let db = self.reader.clone();
        blocking(move || {
            let sql =
                format!("SELECT {COLUMNS}, change_seq, node FROM alarm WHERE change_seq > $1 ORDER BY change_seq");
            db.query(&sql, &[after.into()])?
                .iter()
                .map(|r| Ok(AlarmChange { alarm: from_row(r)?, seq: r.get(9)?, node: r.get(10)? }))
                .collect()
        })
        .await?
    }
}

/// A name for this central process among the nodes sharing a catalog: its host's name, its
/// process id and when it started.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!("{}-{}-{:x}", host.trim(), std::process::id(), started.as_micros())
}

/// Runs `f` off the async executor (the catalog's calls block).
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T, CatalogError> {
    tokio::task::spawn_blocking(f).await.map_err(|_| CatalogError::Stopped { part: SCHEMA.part })
}

/// The statement of [`Alarms::list`], with a state (`$1`, limit `$2`) or without (limit
/// `$1`): two statements, so that each walks its index.
fn list_sql(in_state: bool) -> String {
    if in_state {
        format!("SELECT {COLUMNS} FROM alarm WHERE state = $1 ORDER BY time_us DESC LIMIT $2")
    } else {
        format!("SELECT {COLUMNS} FROM alarm ORDER BY time_us DESC LIMIT $1")
    }
}

#[cfg(test)]
#[path = "alarms_tests.rs"]
mod tests;

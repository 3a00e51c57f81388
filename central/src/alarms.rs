//! Alarms: each event a unit sends becomes an alarm in `sync.db` (`alarm`, keyed by unit and
//! the unit's event id), which operators take through `new` → `in_progress` → `closed`; the
//! row keeps who changed it last, when, and their comment.
//!
//! Two id spaces share the key: a unit's own events have positive ids (the unit's, always at
//! least 1), and events sent to central's generic-events ingest (`POST /api/events`) get
//! negative ones, -1, -2, … in the order central takes them, one sequence over all units. The
//! two can never collide, and both stay exact in JavaScript.

use protocol::sync::RemoteEvent;
use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;

use crate::retrieved::{RetrievedError, RetrievedStore};
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
    /// The store failed.
    #[error(transparent)]
    Store(#[from] RetrievedError),
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

const COLUMNS: &str = "unit, event_id, time_us, cameras, kind, state, changed_by, changed_us, comment";

/// Adds the workflow's columns to an `alarm` table made before them, and the indexes that let
/// the newest alarms (of one state) be read without sorting the whole table.
pub fn migrate(db: &Connection) -> rusqlite::Result<()> {
    let mut stmt = db.prepare("SELECT name FROM pragma_table_info('alarm')")?;
    let have: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    for (column, ty) in [("changed_by", "TEXT"), ("changed_us", "INTEGER"), ("comment", "TEXT")] {
        if !have.iter().any(|h| h == column) {
            db.execute_batch(&format!("ALTER TABLE alarm ADD COLUMN {column} {ty}"))?;
        }
    }
    db.execute_batch(
        "CREATE INDEX IF NOT EXISTS alarm_by_time ON alarm (time_us);
         CREATE INDEX IF NOT EXISTS alarm_by_state_time ON alarm (state, time_us);",
    )
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Alarm> {
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
        changed_at: r.get::<_, Option<i64>>(7)?.map(rfc3339),
        comment: r.get(8)?,
    })
}

fn get(db: &Connection, unit: &str, event_id: i64) -> rusqlite::Result<Option<Alarm>> {
    db.query_row(
        &format!("SELECT {COLUMNS} FROM alarm WHERE unit = ?1 AND event_id = ?2"),
        params![unit, event_id],
        from_row,
    )
    .optional()
}

/// Stores a unit's events as new alarms (idempotent by event id); the alarms that are new.
pub async fn add(store: &RetrievedStore, unit: &str, events: Vec<RemoteEvent>) -> Result<Vec<Alarm>, RetrievedError> {
    let unit = unit.to_owned();
    // One savepoint of the store's next group commit: all of the batch or none.
    store
        .write(move |db| {
            let mut added = Vec::new();
            for e in &events {
                let kind = serde_json::to_string(&e.kind).unwrap_or_default();
                let cameras = serde_json::to_string(&e.cameras).unwrap_or_default();
                let inserted = db.execute(
                    "INSERT OR IGNORE INTO alarm (unit, event_id, time_us, cameras, kind, state)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'new')",
                    params![unit, e.id as i64, e.time_us, cameras, kind],
                )?;
                if inserted == 1
                    && let Some(a) = get(db, &unit, e.id as i64)?
                {
                    added.push(a);
                }
            }
            Ok(added)
        })
        .await
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

/// Stores an ingested event as a new alarm with the next negative id (see the module
/// documentation); the alarm.
pub async fn add_ingested(store: &RetrievedStore, event: Ingested) -> Result<Alarm, RetrievedError> {
    store
        .query(move |db| {
            let tx = db.transaction()?;
            let lowest: Option<i64> =
                tx.query_row("SELECT MIN(event_id) FROM alarm WHERE event_id < 0", [], |r| r.get(0))?;
            let id = lowest.unwrap_or(0) - 1;
            let cameras = serde_json::to_string(&event.camera.iter().collect::<Vec<_>>()).unwrap_or_default();
            let kind = ingested_kind(&event.name, &event.message).to_string();
            tx.execute(
                "INSERT INTO alarm (unit, event_id, time_us, cameras, kind, state) VALUES (?1, ?2, ?3, ?4, ?5, 'new')",
                params![event.unit, id, event.time_us, cameras, kind],
            )?;
            let alarm = get(&tx, &event.unit, id)?.ok_or(rusqlite::Error::QueryReturnedNoRows)?;
            tx.commit()?;
            Ok(alarm)
        })
        .await
}

/// The newest `limit` alarms, newest first, all or only those in `state` (read beside the
/// store's writer, see [`crate::sync_reads`]).
pub async fn list(store: &RetrievedStore, state: Option<AlarmState>, limit: u32) -> Result<Vec<Alarm>, RetrievedError> {
    store
        .read(move |db| {
            let mut stmt = db.prepare_cached(&list_sql(state.is_some()))?;
            let rows = stmt.query_map(params![state.map(AlarmState::as_str), limit], from_row)?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
}

/// The statement of [`list`], with or without a state (`?1`); limit `?2`. Two statements, so
/// that each walks its index (`?1 IS NULL OR state = ?1` would use neither and sort the table).
fn list_sql(in_state: bool) -> String {
    let filter = if in_state { "state = ?1" } else { "?1 IS NULL" };
    format!("SELECT {COLUMNS} FROM alarm WHERE {filter} ORDER BY time_us DESC LIMIT ?2")
}

/// Moves alarm (`unit`, `event_id`) to `change.state`; the alarm as it is now.
pub async fn change(store: &RetrievedStore, unit: &str, event_id: i64, change: Change) -> Result<Alarm, ChangeError> {
    let unit = unit.to_owned();
    store
        .query(move |db| {
            let tx = db.transaction()?;
            let Some(now) = get(&tx, &unit, event_id)? else {
                return Ok(Err(ChangeError::NotFound { unit, event_id }));
            };
            if change.state < now.state {
                return Ok(Err(ChangeError::Backwards { from: now.state, to: change.state }));
            }
            tx.execute(
                "UPDATE alarm SET state = ?3, changed_by = ?4, changed_us = ?5, comment = COALESCE(?6, comment)
                 WHERE unit = ?1 AND event_id = ?2",
                params![unit, event_id, change.state.as_str(), change.by, change.at_us, change.comment],
            )?;
            let after = get(&tx, &unit, event_id)?;
            tx.commit()?;
            Ok(after.ok_or(ChangeError::NotFound { unit, event_id }))
        })
        .await?
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::sync::{EventKind, RemoteEvent};

    fn event(id: u64, time_us: i64) -> RemoteEvent {
        RemoteEvent {
            id,
            time_us,
            cameras: vec!["front".into()],
            kind: EventKind::Generic { name: "x".into(), detail: String::new() },
        }
    }

    fn by(state: AlarmState, who: &str, comment: Option<&str>, at_us: i64) -> Change {
        Change { state, by: who.into(), comment: comment.map(Into::into), at_us }
    }

    #[tokio::test]
    async fn alarms_move_forward_and_say_who_and_when() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetrievedStore::open(dir.path()).unwrap();
        let added = add(&store, "bus", vec![event(1, 1_000_000), event(2, 2_000_000)]).await.unwrap();
        assert_eq!(added.len(), 2);
        assert!(add(&store, "bus", vec![event(1, 1_000_000)]).await.unwrap().is_empty(), "idempotent");
        let new = list(&store, Some(AlarmState::New), 10).await.unwrap();
        assert_eq!(new.iter().map(|a| a.event_id).collect::<Vec<_>>(), [2, 1], "newest first");
        assert_eq!((new[0].changed_by.as_deref(), new[0].changed_at.as_deref()), (None, None));

        let a = change(&store, "bus", 1, by(AlarmState::InProgress, "olga", Some("on it"), 5_000_000)).await.unwrap();
        assert_eq!(a.state, AlarmState::InProgress);
        assert_eq!(a.changed_by.as_deref(), Some("olga"));
        assert_eq!(a.changed_at.as_deref(), Some("1970-01-01T00:00:05Z"));
        assert_eq!(a.comment.as_deref(), Some("on it"));
        let a = change(&store, "bus", 1, by(AlarmState::Closed, "max", None, 6_000_000)).await.unwrap();
        assert_eq!(
            (a.state, a.changed_by.as_deref(), a.comment.as_deref()),
            (AlarmState::Closed, Some("max"), Some("on it"))
        );
        let back = change(&store, "bus", 1, by(AlarmState::InProgress, "olga", None, 7_000_000)).await;
        assert!(matches!(back, Err(ChangeError::Backwards { .. })), "{back:?}");
        let missing = change(&store, "tram", 1, by(AlarmState::Closed, "olga", None, 7_000_000)).await;
        assert!(matches!(missing, Err(ChangeError::NotFound { .. })), "{missing:?}");

        assert_eq!(list(&store, Some(AlarmState::New), 10).await.unwrap().len(), 1);
        assert_eq!(list(&store, Some(AlarmState::Closed), 10).await.unwrap()[0].event_id, 1);
        assert_eq!(list(&store, None, 10).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn ingested_events_count_down_from_minus_one_and_never_meet_a_units_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = RetrievedStore::open(dir.path()).unwrap();
        add(&store, "bus", vec![event(1, 1_000_000)]).await.unwrap();
        let ingested = |unit: &str, camera: Option<&str>| Ingested {
            unit: unit.into(),
            camera: camera.map(Into::into),
            time_us: 3_000_000,
            name: "door-forced".into(),
            message: "rear door".into(),
        };
        let a = add_ingested(&store, ingested("bus", Some("front"))).await.unwrap();
        let b = add_ingested(&store, ingested("tram", None)).await.unwrap();
        assert_eq!((a.event_id, b.event_id), (-1, -2), "one sequence over all units");
        assert_eq!((a.cameras, b.cameras), (vec!["front".to_owned()], vec![]));
        assert_eq!(a.kind["Generic"]["name"], "door-forced");
        assert_eq!((a.state, a.time.as_str()), (AlarmState::New, "1970-01-01T00:00:03Z"));
        let closed = change(&store, "bus", -1, by(AlarmState::Closed, "olga", Some("fixed"), 4_000_000)).await.unwrap();
        assert_eq!(closed.comment.as_deref(), Some("fixed"));
        assert_eq!(get_state(&store, "bus", 1).await, AlarmState::New, "the unit's alarm 1 is another alarm");
    }

    async fn get_state(store: &RetrievedStore, unit: &str, id: i64) -> AlarmState {
        let unit = unit.to_owned();
        store.query(move |db| Ok(get(db, &unit, id)?.unwrap().state)).await.unwrap()
    }

    #[test]
    fn the_newest_alarms_are_read_through_an_index_without_sorting() {
        let dir = tempfile::tempdir().unwrap();
        drop(RetrievedStore::open(dir.path()).unwrap());
        let db = Connection::open(dir.path().join("sync.db")).unwrap();
        for (in_state, index) in [(true, "alarm_by_state_time"), (false, "alarm_by_time")] {
            let mut stmt = db.prepare(&format!("EXPLAIN QUERY PLAN {}", list_sql(in_state))).unwrap();
            let plan: Vec<String> =
                stmt.query_map(params!["new", 500], |r| r.get(3)).unwrap().collect::<Result<_, _>>().unwrap();
            assert!(plan.iter().any(|p| p.contains(index)), "{plan:?}");
            assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "sorted: {plan:?}");
        }
    }

    #[test]
    fn a_table_made_before_the_workflow_gains_its_columns() {
        let db = Connection::open_in_memory().unwrap();
        db.execute_batch(
            "CREATE TABLE alarm (unit TEXT NOT NULL, event_id INTEGER NOT NULL, time_us INTEGER NOT NULL,
             cameras TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (unit, event_id)) STRICT;
             INSERT INTO alarm VALUES ('bus', 1, 0, '[]', '{}', 'new');",
        )
        .unwrap();
        migrate(&db).unwrap();
        migrate(&db).unwrap();
        assert_eq!(get(&db, "bus", 1).unwrap().unwrap().changed_by, None);
    }
}

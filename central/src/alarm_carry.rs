//! Alarms an older central kept in its `sync.db` (table `alarm`) are carried over to the
//! catalog once, at open, with their state, who changed it, when and the comment: an
//! operator's closed alarms are not lost. The old table is then renamed
//! `alarm_carried_to_catalog` (kept, unused, for whoever wants to compare; drop it by hand).
//!
//! A crash between the catalog's commit and the rename carries them over again, harmlessly:
//! a unit's alarms are keyed by its event id (`ON CONFLICT DO NOTHING`), and an ingested alarm
//! (negative id, numbered per node before the catalog was shared, so renumbered from the
//! catalog's lowest) is left out when the catalog has one of the unit with the same time and
//! kind.

use std::path::Path;

use rusqlite::OptionalExtension;

use crate::alarms::{insert_ingested, tick};
use crate::catalog::{CatalogDb, CatalogError, Value};

/// The table that replaces `alarm` in `sync.db` once it is carried over.
pub const CARRIED_TABLE: &str = "alarm_carried_to_catalog";

/// One old row: unit, event id, time, cameras, kind, state, changed by, changed at, comment.
type OldRow = (String, i64, i64, String, String, String, Option<String>, Option<i64>, Option<String>);

/// Carries the alarms of `sync_db` (if it exists and still has them) over to `db`; how many
/// rows it read.
pub(crate) fn carry_over(db: &CatalogDb, sync_db: &Path, node: &str) -> Result<usize, CatalogError> {
    if !sync_db.exists() {
        return Ok(0);
    }
    let fail = |source| CatalogError::Sqlite { part: "alarms", path: sync_db.display().to_string(), source };
    let conn = rusqlite::Connection::open(sync_db).map_err(fail)?;
    conn.busy_timeout(std::time::Duration::from_secs(10)).map_err(fail)?;
    let old: Option<String> = conn
        .query_row("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'alarm'", [], |r| r.get(0))
        .optional()
        .map_err(fail)?;
    if old.is_none() {
        return Ok(0);
    }
    let rows = read_old(&conn).map_err(fail)?;
    db.transaction(|tx| {
        let seq = tick(tx)?;
        for (unit, event_id, time_us, cameras, kind, state, by, at, comment) in &rows {
            if *event_id > 0 {
                let params: [Value; 11] = [
                    unit.into(),
                    (*event_id).into(),
                    (*time_us).into(),
                    cameras.into(),
                    kind.into(),
                    state.into(),
                    by.clone().into(),
                    (*at).into(),
                    comment.clone().into(),
                    seq.into(),
                    node.into(),
                ];
                tx.execute(
                    "INSERT INTO alarm (unit, event_id, time_us, cameras, kind, state, changed_by, changed_us, comment,
                         change_seq, node) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                     ON CONFLICT (unit, event_id) DO NOTHING",
                    &params,
                )?;
                continue;
            }
            let there = tx.query_opt(
                "SELECT event_id FROM alarm WHERE unit = $1 AND event_id < 0 AND time_us = $2 AND kind = $3",
                &[unit.into(), (*time_us).into(), kind.into()],
            )?;
            if there.is_some() {
                continue;
            }
            let made = insert_ingested(tx, unit, *time_us, cameras, kind, seq, node)?;
            tx.execute(
                "UPDATE alarm SET state = $3, changed_by = $4, changed_us = $5, comment = $6
                 WHERE unit = $1 AND event_id = $2",
                &[
                    unit.into(),
                    made.event_id.into(),
                    state.into(),
                    by.clone().into(),
                    (*at).into(),
                    comment.clone().into(),
                ],
            )?;
        }
        Ok::<_, CatalogError>(())
    })?;
    conn.execute_batch(&format!("ALTER TABLE alarm RENAME TO {CARRIED_TABLE}")).map_err(fail)?;
    Ok(rows.len())
}

/// Every row of the old table, highest id first (so ingested ones keep their order when
/// renumbered); columns of the workflow it was made before read as null.
fn read_old(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<OldRow>> {
    let mut stmt = conn.prepare("SELECT name FROM pragma_table_info('alarm')")?;
    let have: Vec<String> = stmt.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
    let column = |c: &str| if have.iter().any(|h| h == c) { c.to_owned() } else { format!("NULL AS {c}") };
    let sql = format!(
        "SELECT unit, event_id, time_us, cameras, kind, state, {}, {}, {} FROM alarm ORDER BY event_id DESC",
        column("changed_by"),
        column("changed_us"),
        column("comment")
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?))
    })?;
    rows.collect()
}

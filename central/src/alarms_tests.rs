//! The alarms' catalog part, each test on SQLite and on a real PostgreSQL server.

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

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A node's alarms at `at`, with a `sync.db` of its own that has no old alarms.
fn node(at: &CatalogLocation, dir: &Path, name: &str) -> Alarms {
    Alarms::open(at, &dir.join(format!("{name}-sync.db")), name).unwrap()
}

fn alarms_move_forward_and_say_who_and_when(at: &CatalogLocation) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let alarms = node(at, dir.path(), "a");
        let added = alarms.add("bus", vec![event(1, 1_000_000), event(2, 2_000_000)]).await.unwrap();
        assert_eq!(added.len(), 2);
        assert!(alarms.add("bus", vec![event(1, 1_000_000)]).await.unwrap().is_empty(), "idempotent");
        let new = alarms.list(Some(AlarmState::New), 10).await.unwrap();
        assert_eq!(new.iter().map(|a| a.event_id).collect::<Vec<_>>(), [2, 1], "newest first");
        assert_eq!((new[0].changed_by.as_deref(), new[0].changed_at.as_deref()), (None, None));

        let a = alarms.change("bus", 1, by(AlarmState::InProgress, "olga", Some("on it"), 5_000_000)).await.unwrap();
        assert_eq!(a.state, AlarmState::InProgress);
        assert_eq!(a.changed_by.as_deref(), Some("olga"));
        assert_eq!(a.changed_at.as_deref(), Some("1970-01-01T00:00:05Z"));
        assert_eq!(a.comment.as_deref(), Some("on it"));
        let again = alarms.change("bus", 1, by(AlarmState::InProgress, "olga", Some("there in 5"), 5_500_000)).await;
        assert_eq!(again.unwrap().comment.as_deref(), Some("there in 5"), "the same operator may change the comment");
        let taken = alarms.change("bus", 1, by(AlarmState::InProgress, "max", None, 5_600_000)).await;
        assert!(matches!(&taken, Err(ChangeError::Taken { by: Some(b), .. }) if b == "olga"), "{taken:?}");
        let a = alarms.change("bus", 1, by(AlarmState::Closed, "max", None, 6_000_000)).await.unwrap();
        assert_eq!(
            (a.state, a.changed_by.as_deref(), a.comment.as_deref()),
            (AlarmState::Closed, Some("max"), Some("there in 5"))
        );
        let back = alarms.change("bus", 1, by(AlarmState::InProgress, "olga", None, 7_000_000)).await;
        assert!(matches!(back, Err(ChangeError::Backwards { .. })), "{back:?}");
        let missing = alarms.change("tram", 1, by(AlarmState::Closed, "olga", None, 7_000_000)).await;
        assert!(matches!(missing, Err(ChangeError::NotFound { .. })), "{missing:?}");

        assert_eq!(alarms.list(Some(AlarmState::New), 10).await.unwrap().len(), 1);
        assert_eq!(alarms.list(Some(AlarmState::Closed), 10).await.unwrap()[0].event_id, 1);
        assert_eq!(alarms.list(None, 10).await.unwrap().len(), 2);
        assert_eq!(alarms.list(None, 1).await.unwrap().len(), 1, "the limit holds");
    });
}
crate::on_both_backends!(alarms_move_forward_and_say_who_and_when, super::alarms_move_forward_and_say_who_and_when);

fn a_resent_event_makes_one_alarm_whichever_node_gets_it(at: &CatalogLocation) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let (a, b) = (node(at, dir.path(), "a"), node(at, dir.path(), "b"));
        // The unit sends event 5 to node A, reconnects to node B and sends it again, and both
        // at once.
        let (from_a, from_b) = tokio::join!(a.add("bus", vec![event(5, 1_000)]), b.add("bus", vec![event(5, 1_000)]));
        let made = from_a.unwrap().len() + from_b.unwrap().len();
        assert_eq!(made, 1, "one alarm, raised by one node");
        assert!(b.add("bus", vec![event(5, 1_000)]).await.unwrap().is_empty());
        assert_eq!(a.list(None, 10).await.unwrap().len(), 1);
        assert_eq!(b.list(None, 10).await.unwrap().len(), 1);
    });
}
crate::on_both_backends!(
    a_resent_event_makes_one_alarm_whichever_node_gets_it,
    super::a_resent_event_makes_one_alarm_whichever_node_gets_it
);

fn of_two_nodes_acknowledging_at_once_one_wins_and_the_other_is_told(at: &CatalogLocation) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let (a, b) = (Arc::new(node(at, dir.path(), "a")), Arc::new(node(at, dir.path(), "b")));
        let events: Vec<_> = (1..=20).map(|i| event(i, i as i64)).collect();
        a.add("bus", events).await.unwrap();
        for id in 1..=20i64 {
            let ack = |alarms: Arc<Alarms>, who: &'static str| {
                tokio::spawn(async move { alarms.change("bus", id, by(AlarmState::InProgress, who, None, 9)).await })
            };
            let (at_a, at_b) = tokio::join!(ack(a.clone(), "olga"), ack(b.clone(), "max"));
            let (at_a, at_b) = (at_a.unwrap(), at_b.unwrap());
            let (won, lost) = match (&at_a, &at_b) {
                (Ok(w), Err(l)) | (Err(l), Ok(w)) => (w, l),
                _ => panic!("alarm {id}: exactly one must win: {at_a:?} / {at_b:?}"),
            };
            let winner = won.changed_by.clone().unwrap();
            match lost {
                ChangeError::Taken { state: AlarmState::InProgress, by: Some(b), .. } => assert_eq!(*b, winner),
                other => panic!("alarm {id}: the loser must be told who took it: {other}"),
            }
            assert!(lost.to_string().contains(&format!("already in_progress (set by {winner}")), "{lost}");
            let listed = b.list(Some(AlarmState::InProgress), 100).await.unwrap();
            let row = listed.iter().find(|x| x.event_id == id).unwrap();
            assert_eq!(row.changed_by.as_deref(), Some(winner.as_str()), "the winner's change stands");
        }
    });
}
crate::on_both_backends!(
    of_two_nodes_acknowledging_at_once_one_wins_and_the_other_is_told,
    super::of_two_nodes_acknowledging_at_once_one_wins_and_the_other_is_told
);

fn each_node_learns_the_other_nodes_changes_in_order(at: &CatalogLocation) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let (a, b) = (node(at, dir.path(), "a"), node(at, dir.path(), "b"));
        let start = b.last_seq().await.unwrap();
        a.add("bus", vec![event(1, 1_000)]).await.unwrap();
        b.change("bus", 1, by(AlarmState::InProgress, "olga", None, 2_000)).await.unwrap();
        a.change("bus", 1, by(AlarmState::Closed, "max", None, 3_000)).await.unwrap();
        let changes = b.changed_since(start).await.unwrap();
        // One row per alarm: its latest write, by node A.
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!((changes[0].node.as_str(), changes[0].alarm.state), ("a", AlarmState::Closed));
        let seen = changes[0].seq;
        assert_eq!(seen, b.last_seq().await.unwrap());
        assert!(b.changed_since(seen).await.unwrap().is_empty(), "nothing new");
        let ingested = b
            .add_ingested(Ingested {
                unit: "bus".into(),
                camera: None,
                time_us: 4_000,
                name: "door".into(),
                message: String::new(),
            })
            .await
            .unwrap();
        let changes = a.changed_since(seen).await.unwrap();
        assert_eq!(
            changes.iter().map(|c| (c.alarm.event_id, c.node.as_str())).collect::<Vec<_>>(),
            [(ingested.event_id, "b")]
        );
    });
}
crate::on_both_backends!(
    each_node_learns_the_other_nodes_changes_in_order,
    super::each_node_learns_the_other_nodes_changes_in_order
);

fn ingested_events_count_down_from_minus_one_over_every_node(at: &CatalogLocation) {
    let dir = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let (a, b) = (node(at, dir.path(), "a"), node(at, dir.path(), "b"));
        a.add("bus", vec![event(1, 1_000_000)]).await.unwrap();
        let ingested = |unit: &str, camera: Option<&str>| Ingested {
            unit: unit.into(),
            camera: camera.map(Into::into),
            time_us: 3_000_000,
            name: "door-forced".into(),
            message: "rear door".into(),
        };
        let first = a.add_ingested(ingested("bus", Some("front"))).await.unwrap();
        let second = b.add_ingested(ingested("tram", None)).await.unwrap();
        assert_eq!((first.event_id, second.event_id), (-1, -2), "one sequence over all units and nodes");
        assert_eq!((first.cameras, second.cameras), (vec!["front".to_owned()], vec![]));
        assert_eq!(first.kind["Generic"]["name"], "door-forced");
        assert_eq!((first.state, first.time.as_str()), (AlarmState::New, "1970-01-01T00:00:03Z"));
        // Two nodes at once never take one id.
        let (x, y) = tokio::join!(a.add_ingested(ingested("bus", None)), b.add_ingested(ingested("bus", None)));
        let mut ids = [x.unwrap().event_id, y.unwrap().event_id];
        ids.sort();
        assert_eq!(ids, [-4, -3]);
        let closed = b.change("bus", -1, by(AlarmState::Closed, "olga", Some("fixed"), 4_000_000)).await.unwrap();
        assert_eq!(closed.comment.as_deref(), Some("fixed"));
        let new = a.list(Some(AlarmState::New), 10).await.unwrap();
        assert!(new.iter().any(|x| x.unit == "bus" && x.event_id == 1), "the unit's alarm 1 is another alarm");
    });
}
crate::on_both_backends!(
    ingested_events_count_down_from_minus_one_over_every_node,
    super::ingested_events_count_down_from_minus_one_over_every_node
);

/// An older central's `sync.db` with alarms in it: a table made before the workflow's
/// columns, then given them, as `migrate` used to.
fn old_sync_db(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(
        "CREATE TABLE alarm (unit TEXT NOT NULL, event_id INTEGER NOT NULL, time_us INTEGER NOT NULL,
         cameras TEXT NOT NULL, kind TEXT NOT NULL, state TEXT NOT NULL, PRIMARY KEY (unit, event_id)) STRICT;
         ALTER TABLE alarm ADD COLUMN changed_by TEXT;
         ALTER TABLE alarm ADD COLUMN changed_us INTEGER;
         ALTER TABLE alarm ADD COLUMN comment TEXT;
         CREATE INDEX alarm_by_time ON alarm (time_us);
         INSERT INTO alarm VALUES ('bus', 1, 1000000, '[\"front\"]', '{\"Generic\":{\"name\":\"a\",\"detail\":\"\"}}',
                                   'closed', 'olga', 5000000, 'dealt with');
         INSERT INTO alarm VALUES ('bus', 2, 2000000, '[]', '{}', 'new', NULL, NULL, NULL);
         INSERT INTO alarm VALUES ('bus', -1, 3000000, '[]', '{\"Generic\":{\"name\":\"door\",\"detail\":\"\"}}',
                                   'in_progress', 'max', 6000000, NULL);
         INSERT INTO alarm VALUES ('tram', -2, 4000000, '[]', '{\"Generic\":{\"name\":\"fire\",\"detail\":\"\"}}',
                                   'new', NULL, NULL, NULL);",
    )
    .unwrap();
}

fn alarms_of_an_older_sync_db_are_carried_over_once(at: &CatalogLocation) {
    let dir = tempfile::tempdir().unwrap();
    let sync_db = dir.path().join("sync.db");
    old_sync_db(&sync_db);
    runtime().block_on(async {
        // Another node already raised an ingested alarm in the shared catalog.
        let other = node(at, dir.path(), "b");
        let theirs =
            Ingested { unit: "van".into(), camera: None, time_us: 1, name: "x".into(), message: String::new() };
        assert_eq!(other.add_ingested(theirs).await.unwrap().event_id, -1);

        let alarms = Alarms::open(at, &sync_db, "a").unwrap();
        let all = alarms.list(None, 100).await.unwrap();
        assert_eq!(all.len(), 5, "{all:?}");
        let closed = all.iter().find(|x| x.unit == "bus" && x.event_id == 1).unwrap();
        assert_eq!(
            (closed.state, closed.changed_by.as_deref(), closed.changed_at.as_deref(), closed.comment.as_deref()),
            (AlarmState::Closed, Some("olga"), Some("1970-01-01T00:00:05Z"), Some("dealt with")),
            "an operator's closed alarm is kept as it was"
        );
        assert_eq!(closed.cameras, ["front"]);
        // The node's ingested alarms are renumbered below the catalog's, in their order.
        let door = all.iter().find(|x| x.kind["Generic"]["name"] == "door").unwrap();
        let fire = all.iter().find(|x| x.kind["Generic"]["name"] == "fire").unwrap();
        assert_eq!((door.event_id, door.state, door.changed_by.as_deref()), (-2, AlarmState::InProgress, Some("max")));
        assert_eq!((fire.event_id, fire.unit.as_str()), (-3, "tram"));
        drop(alarms);

        let db = rusqlite::Connection::open(&sync_db).unwrap();
        let tables: Vec<String> = db
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(tables, [crate::alarm_carry::CARRIED_TABLE], "the old table is renamed, its rows kept");
        // A crash before the rename carries them over again: nothing is doubled.
        db.execute_batch(&format!("ALTER TABLE {} RENAME TO alarm", crate::alarm_carry::CARRIED_TABLE)).unwrap();
        drop(db);
        let again = Alarms::open(at, &sync_db, "a").unwrap();
        assert_eq!(again.list(None, 100).await.unwrap().len(), 5, "carried over once");
    });
}
crate::on_both_backends!(
    alarms_of_an_older_sync_db_are_carried_over_once,
    super::alarms_of_an_older_sync_db_are_carried_over_once
);

#[test]
fn the_newest_alarms_are_read_through_an_index_without_sorting() {
    let dir = tempfile::tempdir().unwrap();
    drop(CatalogDb::open(&CatalogLocation::Sqlite { dir: dir.path().to_owned() }, &SCHEMA).unwrap());
    let db = rusqlite::Connection::open(dir.path().join("alarms.db")).unwrap();
    for (in_state, index) in [(true, "alarm_by_state_time"), (false, "alarm_by_time")] {
        let sql = list_sql(in_state).replace('$', "?");
        let mut stmt = db.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let params: &[&dyn rusqlite::ToSql] = if in_state { &[&"new", &500] } else { &[&500] };
        let plan: Vec<String> = stmt.query_map(params, |r| r.get(3)).unwrap().collect::<Result<_, _>>().unwrap();
        assert!(plan.iter().any(|p| p.contains(index)), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "sorted: {plan:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arriving_together_are_stored_in_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let at = CatalogLocation::Sqlite { dir: dir.path().to_owned() };
    let alarms = Arc::new(node(&at, dir.path(), "a"));
    let start = alarms.last_seq().await.unwrap();
    // Hold the writer's connection, so that the events pile up behind the first batch.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (holding_tx, holding) = std::sync::mpsc::channel::<()>();
    let writer = alarms.writer.clone();
    let holder = std::thread::spawn(move || {
        writer
            .transaction(move |_| {
                holding_tx.send(()).unwrap();
                held.recv().unwrap();
                Ok::<_, CatalogError>(())
            })
            .unwrap()
    });
    holding.recv().unwrap();
    let mut pending: Vec<_> = (1..=200u64)
        .map(|id| {
            let alarms = alarms.clone();
            Box::pin(async move { alarms.add(&format!("bus-{}", id % 7), vec![event(id, id as i64)]).await })
        })
        .collect();
    for p in &mut pending {
        assert!(futures::poll!(p.as_mut()).is_pending());
    }
    release.send(()).unwrap();
    holder.join().unwrap();
    let added: usize = futures::future::join_all(pending).await.into_iter().map(|r| r.unwrap().len()).sum();
    assert_eq!(added, 200);
    let transactions = alarms.last_seq().await.unwrap() - start;
    assert!(transactions <= 3, "200 events waiting together took {transactions} transactions");
}

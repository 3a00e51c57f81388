//! The catalog's own tests, each run on SQLite and on a real PostgreSQL server.

use super::*;

const V1: Migration = Migration {
    sqlite: "CREATE TABLE thing (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
             n INTEGER, x REAL, data BLOB, flag INTEGER) STRICT;",
    postgres: "CREATE TABLE thing (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT NOT NULL UNIQUE,
               n BIGINT, x DOUBLE PRECISION, data BYTEA, flag BOOLEAN);",
};
const V2: Migration = Migration {
    sqlite: "ALTER TABLE thing ADD COLUMN note TEXT;",
    postgres: "ALTER TABLE thing ADD COLUMN note TEXT;",
};
const SCHEMA_1: Schema = Schema { part: "things", sqlite_file: "things.db", migrations: &[V1] };
const SCHEMA_2: Schema = Schema { part: "things", sqlite_file: "things.db", migrations: &[V1, V2] };

fn every_type_goes_in_and_comes_back(at: &CatalogLocation) {
    let db = CatalogDb::open(at, &SCHEMA_1).unwrap();
    let n = db
        .execute(
            "INSERT INTO thing (name, n, x, data, flag) VALUES ($1, $2, $3, $4, $5)",
            &["a '$1' b".into(), (-1i64 << 40).into(), 0.5.into(), vec![0u8, 255, 7].into(), true.into()],
        )
        .unwrap();
    assert_eq!(n, 1);
    db.execute(
        "INSERT INTO thing (name, n, x, data, flag) VALUES ($1, $2, $3, $4, $5)",
        &["empty".into(), Value::Null, Value::Null, Value::Null, Value::Null],
    )
    .unwrap();
    let rows = db.query("SELECT id, name, n, x, data, flag FROM thing ORDER BY id", &[]).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].get::<String>(1).unwrap(), "a '$1' b", "placeholders inside text stay text");
    assert_eq!(rows[0].get::<i64>(2).unwrap(), -1i64 << 40);
    assert_eq!(rows[0].get::<f64>(3).unwrap(), 0.5);
    assert_eq!(rows[0].get::<Vec<u8>>(4).unwrap(), vec![0, 255, 7]);
    assert!(rows[0].get::<bool>(5).unwrap());
    assert!(rows[1].get::<i64>(0).unwrap() > rows[0].get::<i64>(0).unwrap(), "ids grow");
    assert_eq!(rows[1].get::<Option<i64>>(2).unwrap(), None);
    assert_eq!(rows[1].get::<Option<Vec<u8>>>(4).unwrap(), None);
    let e = rows[0].get::<i64>(1).unwrap_err();
    assert!(matches!(e, CatalogError::Decode { column: 1, .. }), "{e}");
    let count = db.query_one("SELECT count(*) > 0, count(*) FROM thing WHERE name LIKE $1", &["a%".into()]).unwrap();
    assert!(count.get::<bool>(0).unwrap());
    assert_eq!(count.get::<i64>(1).unwrap(), 1);
    assert_eq!(db.query_opt("SELECT id FROM thing WHERE name = $1", &["none".into()]).unwrap(), None);
}
crate::on_both_backends!(every_type_goes_in_and_comes_back, super::every_type_goes_in_and_comes_back);

fn a_failed_transaction_leaves_nothing_behind(at: &CatalogLocation) {
    let db = CatalogDb::open(at, &SCHEMA_1).unwrap();
    db.execute("INSERT INTO thing (name) VALUES ($1)", &["a".into()]).unwrap();
    let e = db
        .transaction(|tx| {
            tx.execute("INSERT INTO thing (name) VALUES ($1)", &["b".into()])?;
            tx.execute("INSERT INTO thing (name) VALUES ($1)", &["a".into()])
        })
        .unwrap_err();
    assert!(e.to_string().contains("catalog things"), "{e}");
    let names: Vec<String> =
        db.query("SELECT name FROM thing ORDER BY name", &[]).unwrap().iter().map(|r| r.get(0).unwrap()).collect();
    assert_eq!(names, ["a"], "b was rolled back with the failed insert");
    let upserted = db
        .execute(
            "INSERT INTO thing (name, n) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET n = excluded.n",
            &["a".into(), 5i64.into()],
        )
        .unwrap();
    assert_eq!(upserted, 1);
    let ignored =
        db.execute("INSERT INTO thing (name) VALUES ($1) ON CONFLICT (name) DO NOTHING", &["a".into()]).unwrap();
    assert_eq!(ignored, 0);
    let deleted = db.query("DELETE FROM thing WHERE name = $1 RETURNING n", &["a".into()]).unwrap();
    assert_eq!(deleted[0].get::<i64>(0).unwrap(), 5);
    let still_works = db.query("SELECT count(*) FROM thing", &[]).unwrap();
    assert_eq!(still_works[0].get::<i64>(0).unwrap(), 0, "the connection is usable after a failure");
}
crate::on_both_backends!(a_failed_transaction_leaves_nothing_behind, super::a_failed_transaction_leaves_nothing_behind);

fn migrations_apply_once_in_order_and_a_newer_schema_is_refused(at: &CatalogLocation) {
    let db = CatalogDb::open(at, &SCHEMA_1).unwrap();
    db.execute("INSERT INTO thing (name) VALUES ($1)", &["kept".into()]).unwrap();
    drop(db);
    let db = CatalogDb::open(at, &SCHEMA_2).unwrap();
    db.execute("UPDATE thing SET note = $1", &["v2".into()]).unwrap();
    let row = db.query_one("SELECT name, note FROM thing", &[]).unwrap();
    assert_eq!((row.get::<String>(0).unwrap(), row.get::<String>(1).unwrap()), ("kept".into(), "v2".into()));
    let version = db.query_one("SELECT version FROM catalog_schema WHERE part = $1", &["things".into()]).unwrap();
    assert_eq!(version.get::<i64>(0).unwrap(), 2);
    drop(CatalogDb::open(at, &SCHEMA_2).unwrap());
    let e = CatalogDb::open(at, &SCHEMA_1).err().unwrap().to_string();
    assert!(e.contains("version 2") && e.contains("newer central"), "{e}");
}
crate::on_both_backends!(
    migrations_apply_once_in_order_and_a_newer_schema_is_refused,
    super::migrations_apply_once_in_order_and_a_newer_schema_is_refused
);

fn two_connections_see_each_others_commits(at: &CatalogLocation) {
    let a = CatalogDb::open(at, &SCHEMA_1).unwrap();
    let b = CatalogDb::open(at, &SCHEMA_1).unwrap();
    a.execute("INSERT INTO thing (name, n) VALUES ($1, 0)", &["counter".into()]).unwrap();
    // Both add 1 a hundred times from two threads: row locks (PostgreSQL) or the write lock
    // (SQLite) make every increment count.
    std::thread::scope(|s| {
        for db in [&a, &b] {
            s.spawn(move || {
                for _ in 0..100 {
                    db.execute("UPDATE thing SET n = n + 1 WHERE name = $1", &["counter".into()]).unwrap();
                }
            });
        }
    });
    let n = b.query_one("SELECT n FROM thing WHERE name = $1", &["counter".into()]).unwrap();
    assert_eq!(n.get::<i64>(0).unwrap(), 200);
}
crate::on_both_backends!(two_connections_see_each_others_commits, super::two_connections_see_each_others_commits);

#[tokio::test]
async fn postgres_calls_work_from_inside_the_async_runtime() {
    let at = test_cluster::fresh_database();
    let db = CatalogDb::open(&at, &SCHEMA_1).unwrap();
    db.execute("INSERT INTO thing (name) VALUES ($1)", &["async".into()]).unwrap();
    assert_eq!(db.backend(), Backend::Postgres);
    assert_eq!(db.query("SELECT name FROM thing", &[]).unwrap().len(), 1);
}

#[test]
fn an_unreachable_server_is_named_without_its_password() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let at = CatalogLocation::Postgres { url: format!("postgres://convoy:s3cret@127.0.0.1:{port}/fleet") };
    let e = CatalogDb::open(&at, &SCHEMA_1).err().unwrap().to_string();
    assert!(
        e.starts_with(&format!(
            "cannot connect to the catalog at postgres://convoy@127.0.0.1:{port}/fleet (password omitted)"
        )),
        "{e}"
    );
    assert!(e.contains("check [catalog] url") && !e.contains("s3cret"), "{e}");
}

#[test]
fn a_lost_postgres_connection_is_made_again_at_the_next_call() {
    let at = test_cluster::fresh_database();
    let db = CatalogDb::open(&at, &SCHEMA_1).unwrap();
    let other = CatalogDb::open(&at, &SCHEMA_1).unwrap();
    // With a timeout, pg_terminate_backend returns once the backend has exited (PostgreSQL 14
    // and later); without, it only signals it, and db's next call could still be answered.
    let killed = other
        .query(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert_eq!(killed.len(), 1, "db's connection was cut");
    // The call that finds the connection gone may fail; the next one connects again.
    let _ = db.execute("INSERT INTO thing (name) VALUES ($1)", &["lost?".into()]);
    db.execute("INSERT INTO thing (name) VALUES ($1)", &["after".into()]).unwrap();
    assert!(db.query_opt("SELECT id FROM thing WHERE name = $1", &["after".into()]).unwrap().is_some());
}

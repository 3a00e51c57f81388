//! For tests: a throw-away PostgreSQL cluster from the distribution's server binaries
//! (`/usr/lib/postgresql/VERSION/bin`, Debian's `postgresql` package), listening on a free
//! loopback port, with a fresh database per test. It runs as user `postgres` when the tests
//! run as root (initdb refuses root). The cluster is stopped and its directory removed when
//! the [`Cluster`] is dropped or, for the one a test binary shares, when the binary exits:
//! a small keeper shell waits on a pipe that closes with the test process, however it ends.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{CatalogLocation, pg};

/// A running throw-away cluster; stopped on drop.
pub struct Cluster {
    port: u16,
    keeper: Child,
}

/// Starts, then waits for a line on stdin (EOF when the test process ends), then stops.
const KEEPER: &str = r#"
bin="$1"; dir="$2"; port="$3"
"$bin/initdb" -N -D "$dir/data" -A trust -U postgres >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
"$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null 2>&1 || { cat "$dir/server.log" >&2; exit 1; }
echo ready
read -r _ || true
"$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1
rm -rf "$dir"
"#;

/// The newest `/usr/lib/postgresql/*/bin` with `initdb` and `pg_ctl`.
fn server_bin() -> Result<PathBuf, String> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            (bin.join("initdb").exists() && bin.join("pg_ctl").exists()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "the PostgreSQL server is not installed (no /usr/lib/postgresql/*/bin/initdb); run `./dev setup` \
         (it installs Debian's postgresql package)"
            .to_owned()
    })
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

impl Cluster {
    /// Initialises and starts a cluster in a new temporary directory.
    pub fn start() -> Result<Cluster, String> {
        let bin = server_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("convoy-pg-")
            .tempdir()
            .map_err(|e| format!("cannot make a directory for PostgreSQL: {e}"))?
            .keep();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("cannot find a free port: {e}"))?
            .port();
        let root = is_root();
        if root {
            let chown = Command::new("chown").arg("postgres:postgres").arg(&dir).status();
            if !chown.is_ok_and(|s| s.success()) {
                return Err(format!(
                    "cannot hand {} to user postgres (needed as root: initdb refuses root); run `./dev setup`",
                    dir.display()
                ));
            }
        }
        let mut cmd = if root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "sh", "-c", KEEPER, "keeper"]);
            c
        } else {
            let mut c = Command::new("sh");
            c.args(["-c", KEEPER, "keeper"]);
            c
        };
        cmd.arg(&bin).arg(&dir).arg(port.to_string());
        let mut keeper = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start PostgreSQL's keeper shell: {e}"))?;
        let mut line = String::new();
        let stdout = keeper.stdout.take().ok_or("no stdout")?;
        BufReader::new(stdout).read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let mut err = String::new();
            if let Some(mut e) = keeper.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = keeper.wait();
            let _ = std::fs::remove_dir_all(&dir);
            return Err(format!("PostgreSQL did not start from {}: {}", bin.display(), err.trim()));
        }
        Ok(Cluster { port, keeper })
    }

    /// The URL of database `db` as the superuser `postgres` (trust authentication).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new empty database; its URL.
    pub fn create_database(&self) -> Result<String, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        let url = self.url("postgres");
        pg::off_runtime(|| {
            let mut client = pg::connect(&url).map_err(|e| e.to_string())?;
            client
                .batch_execute(&format!("CREATE DATABASE {name}"))
                .map_err(|e| format!("cannot create database {name}: {}", pg::message(&e)))
        })?;
        Ok(self.url(&name))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        drop(self.keeper.stdin.take());
        let _ = self.keeper.wait();
    }
}

/// The test binary's cluster, started on first use; panics (failing the test, never skipping
/// it) with what to do when PostgreSQL is missing or will not start.
pub fn shared() -> &'static Cluster {
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A fresh database on the test binary's cluster, as a catalog location.
pub fn fresh_database() -> CatalogLocation {
    let url = shared().create_database().unwrap_or_else(|e| panic!("{e}"));
    CatalogLocation::Postgres { url }
}

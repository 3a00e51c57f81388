//! `central`: the Convoy central site's command line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use central::audit::Event;
use central::auth::Auth;
use central::catalog::CatalogLocation;
use central::config::CentralConfig;
use central::enrollment;
use central::fleet::Fleet;
use central::interconnect::Interconnect;
use central::registry::Registry;
use central::web::{WebState, router};
use clap::{Parser, Subcommand};
use link::pki::CertificateAuthority;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "central", version, about = "Convoy central site: fleet registry, live relay, operator UI")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Accept edge units and serve the operator page and API.
    Run {
        /// Central's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Provision edge units (works while central runs).
    #[command(subcommand)]
    Unit(UnitCommand),
    /// Manage the users of the web UI and API (works while central runs).
    #[command(subcommand)]
    User(UserCommand),
    /// Make bearer tokens for scripts (works while central runs).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input (one line, at least 10
    /// characters): `echo "$PASSWORD" | central user add --config central.toml NAME --role ROLE`.
    Add {
        /// Central's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The user name (1–64 letters, digits, '-', '_', '.' or '@').
        name: String,
        /// administrator (everything), operator (also retrieve, export, acknowledge alarms) or
        /// viewer (live video, timelines, playback).
        #[arg(long)]
        role: central::accounts::Role,
        /// Limit the user to this unit (repeat for several); without it the user sees every unit.
        #[arg(long = "unit", value_name = "UNIT")]
        units: Vec<String>,
        /// Set the role, password and units of a user that exists already.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a bearer token for a user; the token is the last word printed. Send it as
    /// `Authorization: Bearer TOKEN`; central keeps only its hash.
    Create {
        /// Central's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The user the token acts as.
        #[arg(long)]
        user: String,
    },
}

#[derive(Subcommand)]
enum UnitCommand {
    /// Make a one-time enrollment token for a unit; the token is the last word printed. The
    /// unit uses it once: `edge enroll --config EDGE.toml --central HOST:PORT --token TOKEN`.
    Add {
        /// Central's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The unit's name: its `unit_id`.
        #[arg(long)]
        name: String,
        /// Hours the token stays valid.
        #[arg(long, default_value_t = 24.0)]
        valid_hours: f64,
    },
    /// Revoke a unit's certificates: a running central cuts it off at once and refuses it
    /// from then on (until it is added and enrolled again).
    Revoke {
        /// Central's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The unit's name.
        #[arg(long)]
        name: String,
    },
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,quinn=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Unit(UnitCommand::Add { config, name, valid_hours }) => unit_add(&config, &name, valid_hours),
        Command::Unit(UnitCommand::Revoke { config, name }) => unit_revoke(&config, &name),
        Command::User(UserCommand::Add { config, name, role, units, replace }) => {
            user_add(&config, &name, role, units, replace)
        }
        Command::Token(TokenCommand::Create { config, user }) => token_create(&config, &user),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("central: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Where the catalog is (creating the directory of SQLite files).
fn catalog(config: &CentralConfig) -> anyhow::Result<CatalogLocation> {
    let dir = &config.store.path;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create store.path {}", dir.display()))?;
    let at = config.catalog_location()?;
    if let CatalogLocation::Sqlite { dir } = &at {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the catalog directory {}", dir.display()))?;
    }
    Ok(at)
}

/// Opens central's data directory and catalog: its CA and its registry.
fn open_site(config: &CentralConfig) -> anyhow::Result<(CertificateAuthority, Registry)> {
    let at = catalog(config)?;
    let ca =
        enrollment::open_ca(&config.store.path).context("cannot load or create central's certificate authority")?;
    let registry = Registry::open(&at).context("cannot open the registry")?;
    Ok((ca, registry))
}

fn unit_add(config_path: &Path, name: &str, valid_hours: f64) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let (ca, mut registry) = open_site(&config)?;
    if !(valid_hours > 0.0 && valid_hours.is_finite()) {
        anyhow::bail!("--valid-hours must be a positive number of hours, not {valid_hours}");
    }
    let validity = std::time::Duration::from_secs_f64(valid_hours * 3600.0);
    let token = enrollment::add_unit(&mut registry, &ca, name, validity)?;
    open_auth(&config)?.audit.record(&Event {
        user: "cli".into(),
        action: "unit_added",
        unit: Some(name.to_owned()),
        detail: format!("enrollment token valid {valid_hours} h"),
        ..Default::default()
    })?;
    println!(
        "unit {name:?} added; on the unit run `edge enroll --config EDGE.toml --central HOST:PORT --token TOKEN` \
         within {valid_hours} h. Enrollment token (one use): {token}"
    );
    Ok(())
}

fn unit_revoke(config_path: &Path, name: &str) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let (_, mut registry) = open_site(&config)?;
    if !registry.is_known(name)? {
        anyhow::bail!("no unit {name:?} was ever added or enrolled here");
    }
    registry.revoke(name, enrollment::now_us())?;
    open_auth(&config)?.audit.record(&Event {
        user: "cli".into(),
        action: "unit_revoked",
        unit: Some(name.to_owned()),
        detail: "from the command line".into(),
        ..Default::default()
    })?;
    println!("unit {name:?} revoked: a running central cuts it off now and refuses it from now on");
    Ok(())
}

/// Opens central's users and audit log.
fn open_auth(config: &CentralConfig) -> anyhow::Result<Auth> {
    Auth::open(&catalog(config)?).context("cannot open central's users and audit log")
}

/// Reads one line (the password) from standard input, without its line end.
fn read_password(name: &str) -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password for {name} (it shows as you type; pipe it in to hide it): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

fn user_add(
    config_path: &Path,
    name: &str,
    role: central::accounts::Role,
    units: Vec<String>,
    replace: bool,
) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let auth = open_auth(&config)?;
    let password = read_password(name)?;
    let units = (!units.is_empty()).then_some(units);
    auth.accounts.add(name, role, &password, units.clone(), replace)?;
    let seen = units.as_ref().map_or_else(|| "every unit".to_owned(), |u| format!("units {}", u.join(", ")));
    auth.audit.record(&Event {
        user: "cli".into(),
        action: "user_added",
        detail: format!("{name} as {} for {seen}", role.as_str()),
        ..Default::default()
    })?;
    println!("user {name:?} {} as {} for {seen}", if replace { "set" } else { "added" }, role.as_str());
    Ok(())
}

fn token_create(config_path: &Path, user: &str) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let auth = open_auth(&config)?;
    let token = auth.accounts.create_token(user)?;
    auth.audit.record(&Event {
        user: "cli".into(),
        action: "token_created",
        detail: format!("for {user}"),
        ..Default::default()
    })?;
    println!("token for user {user:?}; send it as `Authorization: Bearer TOKEN`. Token: {token}");
    Ok(())
}

/// The file the first administrator's password is written to.
const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// On a first start (no user yet), creates the administrator `admin` with a random password,
/// says it once and writes it to a 0600 file in the data directory.
fn first_admin(auth: &Auth, dir: &Path) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if auth.accounts.count()? > 0 {
        return Ok(());
    }
    let password = central::password::new_password()?;
    let path = dir.join(INITIAL_PASSWORD_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    writeln!(file, "{password}")
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    match auth.accounts.add("admin", central::accounts::Role::Administrator, &password, None, false) {
        // Another node sharing the catalog made it at the same moment.
        Err(central::accounts::AccountsError::Exists(_)) => {
            let _ = std::fs::remove_file(&path);
            return Ok(());
        }
        other => other?,
    }
    auth.audit.record(&Event {
        user: "central".into(),
        action: "user_added",
        detail: "admin as administrator for every unit (first start)".into(),
        ..Default::default()
    })?;
    eprintln!(
        "central: first start: log in as admin with password {password} (also in {}; change it with `central user add --replace`)",
        path.display()
    );
    Ok(())
}

fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let dir = &config.store.path;
    let (ca, registry) = open_site(&config)?;
    let at = config.catalog_location()?;
    tracing::info!("catalog: {}", at.describe());
    let ca = Arc::new(ca);
    let auth = open_auth(&config)?;
    first_admin(&auth, dir)?;
    let identity = ca.server_identity(dir).context("cannot load or create central's server certificate")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let mut signals = link::signals::ShutdownSignals::install().context("cannot install signal handlers")?;
        let endpoint = link::endpoint::server(config.quic.listen, &identity)?;
        let quic_addr = endpoint.local_addr()?;
        let listener = central::web::listen(config.web.listen)
            .with_context(|| format!("cannot listen on web.listen = {}", config.web.listen))?;
        let web_addr = listener.local_addr()?;
        println!("central: CA fingerprint {}", ca.fingerprint());
        println!("central: QUIC listening on {quic_addr}");
        println!("central: web listening on http://{web_addr}");
        let fleet = Arc::new(Fleet::default());
        let relay = Arc::new(central::relay::Relay::default());
        let retrieved =
            central::retrieved::RetrievedStore::open(dir).context("cannot open central's store of retrieved video")?;
        let site = Arc::new(config.clone());
        let options = central::recording_options::RecordingOptions::open(site.clone(), &at)
            .context("cannot open the recording options")?;
        let profiles = central::profiles::Profiles::open(&at).context("cannot open the fleet profiles")?;
        let options = options.with_profiles(Arc::new(profiles));
        let audit = central::audit::AuditLog::open(&at).context("cannot open the audit log")?;
        let sync_db = dir.join("sync.db");
        let alarms = Arc::new(
            central::alarms::Alarms::open(&at, &sync_db, &central::alarms::node_name())
                .context("cannot open the alarms")?,
        );
        let locks =
            central::lock_catalog::LockCatalog::open(&at, &sync_db).context("cannot open the evidence locks")?;
        let hub = Arc::new(
            central::sync_hub::SyncHub::new(retrieved, site, Arc::new(options), alarms.clone(), locks)
                .with_audit(audit),
        );
        tokio::spawn(central::alarm_poll::run(alarms, hub.store().live().clone(), shutdown.clone()));
        tokio::spawn(central::lock_apply::run(hub.clone(), shutdown.clone()));
        let registry = Arc::new(Mutex::new(registry));
        let interconnect = Interconnect {
            fleet: fleet.clone(),
            registry: registry.clone(),
            ca: ca.clone(),
            connections: Default::default(),
            relay: relay.clone(),
            hub: hub.clone(),
            hellos: central::hellos::Hellos::start(Registry::open(&at).context("cannot open the registry")?)
                .context("cannot start the registry's hello writer")?,
        };
        tokio::spawn(interconnect.clone().cut_off_revoked(shutdown.clone()));
        tokio::spawn(central::central_recording::run(fleet.clone(), relay.clone(), hub.clone(), shutdown.clone()));
        let quic = tokio::spawn(interconnect.serve(endpoint, shutdown.clone()));
        let web_shutdown = shutdown.clone();
        let live = hub.store().live().clone();
        let webhooks = central::webhook_config::load(&config.webhooks, Path::new(""))
            .map_err(|e| anyhow::anyhow!("config file {}: {e}", config_path.display()))?;
        let webhooks =
            Arc::new(central::webhooks::Webhooks::open(webhooks, dir).context("cannot open the webhooks' outbox")?);
        webhooks.start(&live, fleet.clone(), shutdown.clone());
        let state = WebState { fleet, registry, relay, hub, auth: Arc::new(auth), ca, webhooks };
        let app = router(state).into_make_service_with_connect_info::<std::net::SocketAddr>();
        let web = axum::serve(listener, app).with_graceful_shutdown(async move { web_shutdown.cancelled().await });
        let web = tokio::spawn(web.into_future());
        signals.recv().await;
        tracing::info!("shutting down");
        shutdown.cancel();
        live.close();
        let _ = quic.await;
        web.await.ok().transpose().context("web server")?;
        anyhow::Ok(())
    })
}

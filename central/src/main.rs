//! `central`: the Convoy central site's command line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("central: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Opens central's data directory: its CA and its registry.
fn open_site(config: &CentralConfig) -> anyhow::Result<(CertificateAuthority, Registry)> {
    let dir = &config.store.path;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create store.path {}", dir.display()))?;
    let ca = enrollment::open_ca(dir).context("cannot load or create central's certificate authority")?;
    let registry = Registry::open(&dir.join("central.db")).context("cannot open the registry")?;
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
    println!("unit {name:?} revoked: a running central cuts it off now and refuses it from now on");
    Ok(())
}

fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let dir = &config.store.path;
    let (ca, registry) = open_site(&config)?;
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
        let options = central::recording_options::RecordingOptions::open(site.clone(), &dir.join("options.db"))
            .context("cannot open the recording options")?;
        let hub = Arc::new(central::sync_hub::SyncHub::new(retrieved, site, Arc::new(options)));
        let registry = Arc::new(Mutex::new(registry));
        let interconnect = Interconnect {
            fleet: fleet.clone(),
            registry: registry.clone(),
            ca: Arc::new(ca),
            connections: Default::default(),
            relay: relay.clone(),
            hub: hub.clone(),
        };
        tokio::spawn(interconnect.clone().cut_off_revoked(shutdown.clone()));
        let quic = tokio::spawn(interconnect.serve(endpoint, shutdown.clone()));
        let web_shutdown = shutdown.clone();
        let web = axum::serve(
            listener,
            router(WebState { fleet, registry, relay, hub })
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move { web_shutdown.cancelled().await });
        let web = tokio::spawn(web.into_future());
        signals.recv().await;
        tracing::info!("shutting down");
        shutdown.cancel();
        let _ = quic.await;
        web.await.ok().transpose().context("web server")?;
        anyhow::Ok(())
    })
}

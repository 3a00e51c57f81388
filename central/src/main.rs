//! `central`: the Convoy central site's command line.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use central::config::CentralConfig;
use central::fleet::Fleet;
use central::interconnect::Interconnect;
use central::registry::Registry;
use central::web::{WebState, router};
use clap::{Parser, Subcommand};
use link::identity::Identity;
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
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("central: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = CentralConfig::load(config_path)?;
    let dir = &config.store.path;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create store.path {}", dir.display()))?;
    let (identity, created) = Identity::load_or_create(dir).context("cannot load or create central's TLS identity")?;
    if created {
        tracing::info!("made a new self-signed certificate in {}", dir.display());
    }
    let registry = Registry::open(&dir.join("central.db")).context("cannot open the registry")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let mut signals = link::signals::ShutdownSignals::install().context("cannot install signal handlers")?;
        let endpoint = link::endpoint::server(config.quic.listen, &identity)?;
        let quic_addr = endpoint.local_addr()?;
        let listener = tokio::net::TcpListener::bind(config.web.listen)
            .await
            .with_context(|| format!("cannot listen on web.listen = {}", config.web.listen))?;
        let web_addr = listener.local_addr()?;
        println!("central: certificate fingerprint {}", identity.fingerprint());
        println!("central: QUIC listening on {quic_addr}");
        println!("central: web listening on http://{web_addr}");
        let fleet = Arc::new(Fleet::default());
        let registry = Arc::new(Mutex::new(registry));
        let interconnect = Interconnect { fleet: fleet.clone(), registry: registry.clone() };
        let quic = tokio::spawn(interconnect.serve(endpoint, shutdown.clone()));
        let web_shutdown = shutdown.clone();
        let web = axum::serve(listener, router(WebState { fleet, registry }))
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

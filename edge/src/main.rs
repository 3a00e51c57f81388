//! `edge`: the Convoy edge unit's command line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use edge::camera_supervisor::CameraSupervisor;
use edge::config::EdgeConfig;
use edge::live::LiveHubs;
use edge::recorder::Recorder;
use edge::status::UnitStatus;
use edge::uplink::Uplink;
use media_store::Store;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "edge", version, about = "Convoy edge unit: records cameras and syncs with central")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Record the configured cameras, serve the local page, sync with central.
    Run {
        /// The unit's configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Enroll this unit with central once, using a token from `central unit add`: makes the
    /// unit's key pair and gets its certificate; from then on `edge run` connects with it.
    Enroll {
        /// The unit's configuration file (TOML): its unit_id and store path.
        #[arg(long)]
        config: PathBuf,
        /// Central's QUIC address, HOST:PORT.
        #[arg(long)]
        central: String,
        /// The enrollment token (the last word `central unit add` printed).
        #[arg(long)]
        token: String,
    },
    /// The technician's account for the unit's local page.
    #[command(subcommand)]
    Technician(TechnicianCommand),
    /// Offline tools on a store directory (also one copied off a unit).
    #[command(subcommand)]
    Store(StoreCommand),
    /// Connect to a camera and report what it sends (codec, size, frame rate, bit rate) as
    /// JSON, before adding it to the configuration.
    Probe {
        /// The camera's RTSP URL (credentials may be in it).
        url: url::Url,
        /// RTSP user name.
        #[arg(long)]
        username: Option<String>,
        /// RTSP password.
        #[arg(long)]
        password: Option<String>,
        /// Seconds of video to measure.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
    },
}

#[derive(Subcommand)]
enum TechnicianCommand {
    /// Set (or replace) the technician's user name and password, read from the first line of
    /// stdin; only an argon2id hash is stored, in `<store>/web/technician.json` (mode 0600).
    /// A running unit checks the next login against it; sessions already open run on until
    /// they end (restart the unit to end them at once).
    Set {
        /// The unit's configuration file (TOML): its store path.
        #[arg(long)]
        config: PathBuf,
        /// The technician's user name.
        #[arg(long, default_value = "technician")]
        user: String,
        /// A provisioning password: the page makes the technician change it at first login.
        #[arg(long)]
        must_change: bool,
    },
}

#[derive(Subcommand)]
enum StoreCommand {
    /// Check every record, seal, signature and the catalog; summarise what each camera holds.
    /// Exits 0 when the store is consistent.
    Verify {
        /// The store directory.
        dir: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// The unit's public key (64 hex digits, or a file holding them); default: the
        /// store's own `keys/signing.pub`.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Write a camera's recording between two times as an MP4 file.
    Export {
        /// The store directory.
        dir: PathBuf,
        /// The camera's id.
        #[arg(long)]
        camera: String,
        /// Start, RFC 3339 (e.g. 2026-11-25T08:00:00Z); the export begins at the key frame
        /// at or before it.
        #[arg(long)]
        start: String,
        /// End, RFC 3339.
        #[arg(long)]
        end: String,
        /// The MP4 file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// The store's encryption key file, if its media is encrypted.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// Rebuild the catalog from the segments alone (the unit must not be running).
    Reindex {
        /// The store directory.
        dir: PathBuf,
        /// The store's encryption key file, if its media is encrypted.
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
}

fn enroll(config_path: &Path, central: &str, token: &str) -> anyhow::Result<()> {
    let config = EdgeConfig::load(config_path)?;
    let dir = edge::enroll::identity_dir(&config.store.path);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let ca = runtime.block_on(edge::enroll::enroll(central, token, &config.unit_id, &dir))?;
    println!("unit {:?} enrolled with central at {central} (CA {ca}); identity in {}", config.unit_id, dir.display());
    Ok(())
}

fn technician_set(config_path: &Path, user: &str, must_change: bool) -> anyhow::Result<()> {
    let config = EdgeConfig::load(config_path)?;
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("cannot read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    let credential = edge::auth::Credential::new(user, password, must_change)?;
    let path = edge::auth::credential_path(&config.store.path);
    credential.save(&path)?;
    let note = if must_change { " (to be changed at first login)" } else { "" };
    println!("technician {user:?} set{note}; hash in {}", path.display());
    Ok(())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(|| edge::tech_logs::Tee)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,quinn=warn,retina=warn".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run(&config),
        Command::Enroll { config, central, token } => enroll(&config, &central, &token),
        Command::Technician(TechnicianCommand::Set { config, user, must_change }) => {
            technician_set(&config, &user, must_change)
        }
        Command::Store(StoreCommand::Verify { dir, json, public_key }) => {
            match edge::store_cli::cmd_verify(&dir, json, public_key.as_deref()) {
                Ok(true) => Ok(()),
                Ok(false) => return std::process::ExitCode::FAILURE,
                Err(e) => Err(e),
            }
        }
        Command::Store(StoreCommand::Export { dir, camera, start, end, output, key_file }) => {
            edge::store_cli::cmd_export(&dir, &camera, &start, &end, &output, key_file.as_deref())
        }
        Command::Store(StoreCommand::Reindex { dir, key_file }) => {
            edge::store_cli::cmd_reindex(&dir, key_file.as_deref())
        }
        Command::Probe { url, username, password, seconds } => probe(&url, username, password, seconds),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("edge: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// How long each step of the shutdown may take before the unit gives up on it and goes on: the
/// steps together stay well inside systemd's `TimeoutStopSec=30s` (its kill would lose what
/// the recorder has not yet written). A step given up on is dropped with the runtime.
const SHUTDOWN_STEP_LIMIT: Duration = Duration::from_secs(8);

/// Awaits one step of the shutdown for at most [`SHUTDOWN_STEP_LIMIT`]; `None` (logged, naming
/// the step) when it took longer.
async fn shutdown_step<F: std::future::Future>(what: &str, step: F) -> Option<F::Output> {
    let started = std::time::Instant::now();
    match tokio::time::timeout(SHUTDOWN_STEP_LIMIT, step).await {
        Ok(out) => {
            tracing::debug!("shutting down: {what} took {:?}", started.elapsed());
            Some(out)
        }
        Err(_) => {
            tracing::error!("shutting down: gave up waiting for {what} after {SHUTDOWN_STEP_LIMIT:?}");
            None
        }
    }
}

fn probe(url: &url::Url, username: Option<String>, password: Option<String>, seconds: f64) -> anyhow::Result<()> {
    if !matches!(url.scheme(), "rtsp" | "rtsps") {
        anyhow::bail!("{url} is not an rtsp:// or rtsps:// URL");
    }
    let creds = username.map(|u| (u, password.unwrap_or_default()));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let duration = Duration::from_secs_f64(seconds.clamp(0.5, 60.0));
    let report = runtime
        .block_on(edge::probe::probe(url, creds, duration))
        .map_err(|e| anyhow::anyhow!("cannot probe {url}: {e}"))?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn run(config_path: &Path) -> anyhow::Result<()> {
    let file_config = EdgeConfig::load(config_path)?;
    // Central's camera settings (kept from its last push) over the file's.
    let settings = Arc::new(edge::central_settings::CentralSettings::load_or_set_aside(&file_config.store.path));
    let config = settings.effective(&file_config);
    // Before any other thread runs.
    edge::frame_memory::keep_at_start(config.cameras.len());
    let vehicle = edge::vehicle::VehicleSetup::load(&config)?;
    let (store, recovery) = Store::open(&config.store.path, config.store_options()?)
        .with_context(|| format!("cannot open the store at {}", config.store.path.display()))?;
    tracing::info!(
        cameras = recovery.logs,
        tail_records = recovery.tail_records,
        indexed_segments = recovery.indexed_segments,
        dropped_tail_bytes = recovery.dropped_tail_bytes,
        "store opened at {}",
        config.store.path.display()
    );
    if recovery.dropped_tail_bytes > 0 {
        tracing::warn!(
            "store recovery cut {} bytes of incomplete records from the tail (power loss?)",
            recovery.dropped_tail_bytes
        );
    }
    let status = Arc::new(UnitStatus::new(
        config.unit_id.clone(),
        config.cameras.iter().map(|c| (c.id.clone(), c.display_name().to_owned())),
    ));
    // Sub streams get their slots now, so the recorder's queue counts them.
    for stream in edge::sub_stream::streams(&config.cameras) {
        if let Some(main) = &stream.sub_of {
            status.add_sub_stream(main, &stream.config.id, stream.config.display_name());
        }
    }
    let (recorder, recorder_tx) =
        Recorder::start(store, status.clone(), edge::recorder::RetentionSchedule::from_config(&config.store))
            .context("cannot start the recorder thread")?;
    let liveness = recorder.liveness();
    let durable_logs = recorder.durable_logs();
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")?;
    // Camera ingest runs on threads of its own, apart from the uplink and the web pages.
    let window = std::time::Duration::from_millis(config.store.fsync_interval_ms);
    let ingest = Arc::new(edge::ingest_runtimes::IngestRuntimes::new(edge::ingest_runtimes::Nap::for_window(window)));
    let result = runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let mut signals = link::signals::ShutdownSignals::install().context("cannot install signal handlers")?;
        let listener = tokio::net::TcpListener::bind(config.web.listen)
            .await
            .with_context(|| format!("cannot listen on web.listen = {}", config.web.listen))?;
        let web_addr = listener.local_addr()?;
        println!("edge {}: web listening on http://{web_addr}", config.unit_id);
        let web_shutdown = shutdown.clone();
        let vehicle = vehicle.start(&config, status.clone(), recorder_tx.clone(), liveness, shutdown.clone());
        let certificate = match config.web.https_listen {
            Some(_) => Some(edge::web_tls::PageCertificate::load_or_create(&config.store.path, &config.unit_id)?),
            None => None,
        };
        let central_link = Arc::new(edge::central_link::CentralLink::default());
        let mut dashboard = edge::tech_dashboard::Dashboard::new(&config, status.clone());
        dashboard.link = Some((central_link.clone(), durable_logs.clone()));
        dashboard.https_fingerprint = certificate.as_ref().map(|c| c.fingerprint.clone());
        let dashboard = Arc::new(dashboard);
        let auth = Arc::new(edge::auth_web::Auth::new(&config.store.path, false));
        let recordings = Arc::new(edge::tech_recordings::Recordings::new(
            config.store.path.clone(),
            edge::sub_stream::log_ids(&config.cameras),
            config.store_options()?.encryption_key,
            Some(recorder_tx.clone()),
        ));
        let diagnostics = Arc::new(edge::tech_support::Diagnostics {
            status: status.clone(),
            config_path: config_path.to_owned(),
            store: config.store.path.clone(),
            io: vehicle.io().cloned(),
        });
        let hubs = LiveHubs::with_recorder(recorder_tx.clone());
        let cameras = Arc::new(
            CameraSupervisor::new(status.clone(), recorder_tx.clone(), hubs.clone(), shutdown.clone())
                .on_ingest_threads(ingest.clone()),
        );
        settings.attach(status.clone(), cameras.clone(), config_path.to_owned());
        settings.show_reasons(&config);
        let editor = edge::tech_cameras::CameraEditor::new(config_path.to_owned())
            .applying_to(cameras.clone())
            .with_central_settings(settings.clone());
        let routes = edge::auth_web::protect(
            edge::web::router(status.clone())
                .merge(vehicle.routes())
                .merge(edge::metrics::routes(dashboard.clone()))
                .merge(dashboard.routes())
                .merge(recordings.routes())
                .merge(diagnostics.routes())
                .merge(edge::tech_live::routes(hubs.clone()))
                .merge(edge::link_test::routes(central_link.clone()))
                .merge(Arc::new(editor).routes())
                .merge(edge::central_settings::routes(settings.clone())),
            auth,
        );
        let https = match (config.web.https_listen, certificate) {
            (Some(addr), Some(certificate)) => {
                let tls = certificate.server_config()?;
                let tcp = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on web.https_listen = {addr}"))?;
                let listener = edge::web_tls::TlsListener::new(tcp, tls)?;
                let local = axum::serve::Listener::local_addr(&listener)?;
                println!(
                    "edge {}: web (https) listening on https://{local} certificate sha256 {}",
                    config.unit_id, certificate.fingerprint
                );
                let routes = routes.clone().layer(axum::Extension(edge::web_tls::OverTls));
                let shutdown = shutdown.clone();
                let listener = axum::serve::ListenerExt::tap_io(listener, |_| {});
                Some(tokio::spawn(
                    axum::serve(listener, routes.into_make_service_with_connect_info::<std::net::SocketAddr>())
                        .with_graceful_shutdown(async move { shutdown.cancelled().await })
                        .into_future(),
                ))
            }
            _ => None,
        };
        let web = tokio::spawn(
            axum::serve(listener, routes.into_make_service_with_connect_info::<std::net::SocketAddr>())
                .with_graceful_shutdown(async move { web_shutdown.cancelled().await })
                .into_future(),
        );
        if let Some(generic) = &config.generic_events {
            let listeners = edge::generic_events::GenericListeners::bind(generic).await?;
            if let Some(a) = listeners.tcp_addr() {
                println!("edge {}: generic events tcp listening on {a}", config.unit_id);
            }
            if let Some(a) = listeners.udp_addr() {
                println!("edge {}: generic events udp listening on {a}", config.unit_id);
            }
            listeners.spawn(status.clone(), shutdown.clone());
        }
        let recordings = config
            .cameras
            .iter()
            .map(|cam| edge::recording::CameraRecording::new(&config, cam))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let rules = edge::rules::RuleEngine {
            rules: config.rules.iter().cloned().map(edge::rules::Rule::new).collect(),
            holds: config.cameras.iter().zip(&recordings).map(|(c, r)| (c.id.clone(), r.holds.clone())).collect(),
            status: status.clone(),
            recorder: recorder_tx.clone(),
            io: vehicle.io().cloned(),
        };
        tokio::spawn(rules.run(shutdown.clone()));
        let mut tasks = Vec::new();
        cameras.start(&config, recordings).await;
        let uplink_recorder = recorder_tx.clone();
        drop(recorder_tx);
        if let Some(central) = &config.central {
            let link_source = central.link_source().map_err(anyhow::Error::msg)?;
            tokio::spawn(link_source.watch(status.clone(), shutdown.clone()));
            let uplink = Uplink {
                config: central.clone(),
                identity_dir: edge::enroll::identity_dir(&config.store.path),
                sync: edge::sync_link::SyncSetup {
                    store: config.store.path.clone(),
                    key: config.store_options()?.encryption_key,
                    durable: durable_logs.clone(),
                    recorder: uplink_recorder.clone(),
                    cameras: edge::sub_stream::shared_ids(&config.cameras),
                    central: central_link.clone(),
                    settings: Some(settings.clone()),
                },
                status: status.clone(),
                hubs: hubs.clone(),
            };
            tasks.push(tokio::spawn(uplink.run(shutdown.clone())));
        } else {
            tracing::info!("no [central] configured: recording on this unit only");
        }
        vehicle.ready();
        let power_off = tokio::select! {
            () = signals.recv() => false,
            () = vehicle.power_off() => true,
        };
        tracing::info!("shutting down");
        vehicle.stopping();
        shutdown.cancel();
        shutdown_step("the cameras to stop", cameras.stop_all()).await;
        for t in tasks {
            shutdown_step("the link to central to close", t).await;
        }
        if power_off {
            // The cameras have stopped: seal what they recorded, then exit 0.
            shutdown_step("the seal", vehicle.seal_for_power_off()).await;
        }
        if let Some(served) = shutdown_step("the web page's open requests", web).await {
            served.ok().transpose().context("web server")?;
        }
        if let Some(https) = https
            && let Some(served) = shutdown_step("the web page's open requests over https", https).await
        {
            served.ok().transpose().context("https web server")?;
        }
        anyhow::Ok(())
    });
    // Camera tasks are gone (a task still on an ingest thread after an early error goes with
    // it), so every recorder sender is dropped: the thread drains and syncs.
    drop(runtime);
    ingest.shutdown();
    tracing::info!("shutting down: the recorder writes and syncs what is queued");
    recorder.join();
    tracing::info!("stopped: what the cameras sent is written and synced");
    result
}

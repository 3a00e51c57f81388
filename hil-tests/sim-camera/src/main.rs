//! `sim-camera`: serve a looping H.264 clip over RTSP.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use sim_camera::{Clip, ServerConfig};
use tracing_subscriber::EnvFilter;

/// A simulated IP camera: an RTSP server looping an H.264 clip (RTP over TCP).
#[derive(Debug, Parser)]
#[command(name = "sim-camera", version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8554")]
    listen: String,
    /// H.264 Annex-B clip to loop (every access unit starting with an AUD).
    #[arg(long, default_value = sim_camera::DEFAULT_CLIP)]
    clip: PathBuf,
    /// Mount path to serve the clip at; repeat for several (default /cam).
    #[arg(long = "mount", value_name = "PATH")]
    mounts: Vec<String>,
    /// Frames per second sent to each client.
    #[arg(long, default_value_t = sim_camera::config::DEFAULT_FRAME_RATE)]
    fps: u32,
    /// Start each session's frames at a random point of the first frame time, as independent
    /// cameras would (without it, sessions played together send in step).
    #[arg(long)]
    stagger: bool,
    /// Leave out every Nth RTP packet of each session, as a lossy network would (the
    /// receiver sees gaps in the sequence numbers).
    #[arg(long, value_name = "N")]
    drop_every: Option<u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();

    let clip = Arc::new(Clip::from_file(&args.clip).with_context(|| format!("loading clip {}", args.clip.display()))?);
    let mounts = if args.mounts.is_empty() { vec!["/cam".to_owned()] } else { args.mounts };
    let mut config =
        ServerConfig::new().with_frame_rate(args.fps).with_stagger(args.stagger).with_drop_every(args.drop_every);
    for mount in &mounts {
        config = config.with_mount(mount, clip.clone());
    }
    config.validate()?;

    let listener =
        tokio::net::TcpListener::bind(&args.listen).await.with_context(|| format!("binding {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "sim-camera listening on rtsp://{addr}")?;
        stdout.flush()?;
    }
    tracing::info!(frames = clip.frame_count(), fps = args.fps, "clip {} loaded", args.clip.display());

    sim_camera::serve(listener, config, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

//! Helpers shared by the integration tests: a server on an ephemeral port.

#![allow(dead_code)] // Each test binary uses a different subset.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use sim_camera::{Clip, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The committed clip, loaded once per test binary.
pub fn clip() -> Arc<Clip> {
    static CLIP: OnceLock<Arc<Clip>> = OnceLock::new();
    CLIP.get_or_init(|| Arc::new(Clip::from_file(sim_camera::DEFAULT_CLIP).expect("clip loads"))).clone()
}

/// Sends the server's tracing to the test output when `RUST_LOG` is set.
pub fn init_tracing() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .try_init();
    }
}

/// A configuration serving the committed clip at `/cam`.
pub fn config() -> ServerConfig {
    ServerConfig::new().with_mount("/cam", clip())
}

/// A running `serve` on 127.0.0.1 with a random port; stop it with [`TestServer::stop`].
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), sim_camera::Error>>,
}

impl TestServer {
    /// Binds 127.0.0.1:0 and starts serving `config` in a task.
    pub async fn start(config: ServerConfig) -> Self {
        init_tracing();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(sim_camera::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        Self { addr, stop: Some(stop), task }
    }

    /// `rtsp://127.0.0.1:PORT/path`.
    pub fn url(&self, path: &str) -> url::Url {
        url::Url::parse(&format!("rtsp://{}{}", self.addr, path)).expect("url")
    }

    /// Signals shutdown and waits for `serve` to return; panics if it failed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("serve task panicked").expect("serve returned an error");
    }
}

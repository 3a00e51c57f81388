//! A live viewer of a camera at central (`/api/units/{unit}/cameras/{camera}/live`), reading
//! on a thread of its own: what it received and how late, for tests and benchmarks.

use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{SystemTime, UNIX_EPOCH};

use tungstenite::Message;
use tungstenite::client::IntoClientRequest;

use crate::central_api::CentralApi;

/// What a viewer saw.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Parameter messages received.
    pub parameters: u64,
    /// Frames received, as `(pts, keyframe, latency µs)`: latency is arrival time minus the
    /// time the unit received the frame from the camera (same clock on one machine).
    pub frames: Vec<(i64, bool, i64)>,
    /// For each entry of `frames`, the time the unit received it from the camera (µs since the
    /// Unix epoch) and its size in bytes.
    pub sizes: Vec<(i64, usize)>,
}

/// A viewer connected to central.
pub struct LiveViewer {
    seen: Arc<Mutex<Seen>>,
    frames: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveViewer {
    /// Connects to central (as `api`'s user) for `unit`'s `camera`.
    pub fn open(api: &CentralApi, unit: &str, camera: &str) -> anyhow::Result<LiveViewer> {
        Self::open_with_receive_buffer(api, unit, camera, None)
    }

    /// [`LiveViewer::open`] with a small socket receive buffer, so that a paused viewer stalls
    /// central quickly instead of filling the kernel's buffers.
    pub fn open_with_receive_buffer(
        api: &CentralApi,
        unit: &str,
        camera: &str,
        receive_buffer: Option<usize>,
    ) -> anyhow::Result<LiveViewer> {
        let host = api.web.trim_start_matches("http://");
        let mut request = format!("ws://{host}/api/units/{unit}/cameras/{camera}/live").into_client_request()?;
        request.headers_mut().insert("authorization", format!("Bearer {}", api.token).parse()?);
        let addr: std::net::SocketAddr = host.parse()?;
        let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None)?;
        if let Some(bytes) = receive_buffer {
            socket.set_recv_buffer_size(bytes)?;
        }
        socket.connect(&addr.into())?;
        let stream: TcpStream = socket.into();
        let (mut socket, _) = tungstenite::client(request, stream)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let frames = Arc::new(AtomicU64::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, n, p, st) = (seen.clone(), frames.clone(), paused.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                while p.load(Ordering::Relaxed) && !st.load(Ordering::Relaxed) {
                    std::thread::park_timeout(std::time::Duration::from_millis(20));
                }
                let msg = match socket.read() {
                    Ok(m) => m,
                    Err(_) => return,
                };
                let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
                let mut seen = s.lock().unwrap_or_else(|e| e.into_inner());
                match msg {
                    Message::Text(_) => seen.parameters += 1,
                    Message::Binary(b) if b.len() >= 17 => {
                        let wall = i64::from_be_bytes(b[0..8].try_into().expect("8 bytes"));
                        let pts = i64::from_be_bytes(b[8..16].try_into().expect("8 bytes"));
                        seen.frames.push((pts, b[16] & 1 == 1, now - wall));
                        seen.sizes.push((wall, b.len() - 17));
                        n.fetch_add(1, Ordering::Relaxed);
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
            let _ = socket.close(None);
        });
        Ok(LiveViewer { seen, frames, paused, stop, thread: Some(thread) })
    }

    /// Frames received so far.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// A copy of what it saw.
    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops reading (a stalled viewer) or resumes.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
        if let Some(t) = &self.thread {
            t.thread().unpark();
        }
    }
}

impl Drop for LiveViewer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.pause(false);
        // The reading thread ends at its next message or when central closes the socket; it
        // is not joined, so that dropping a viewer never waits for the camera.
        drop(self.thread.take());
    }
}

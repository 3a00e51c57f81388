//! Live messages to the socket's messages: an init segment at the first key frame (again when
//! the parameters change or the camera's clock restarts), then a media segment per frame.

use mp4_export::{FragmentWriter, Mp4Error, Sample, VideoTrack};
use protocol::interconnect::{LiveMessage, VideoParameters};
use serde_json::json;

/// What a viewer's socket is sent next.
pub enum Out {
    /// A text message (JSON).
    Text(String),
    /// A binary message (an init or media segment).
    Binary(Vec<u8>),
}

/// The text message that announces an init segment.
fn init_message(w: &FragmentWriter) -> Out {
    Out::Text(
        json!({
            "type": "init",
            "mime": w.mime_type(),
            "codec": w.codec_string(),
            "width": w.track().width,
            "height": w.track().height,
        })
        .to_string(),
    )
}

/// Turns live messages into the socket's messages.
#[derive(Default)]
pub struct LiveMuxer {
    writer: Option<FragmentWriter>,
    /// Parameters seen but not yet started (waiting for a key frame).
    track: Option<VideoTrack>,
    /// Frames are dropped until the next key frame (start, new parameters, clock restart).
    need_key: bool,
}

/// Why the stream cannot go on.
#[derive(Debug, thiserror::Error)]
pub enum LiveMuxError {
    /// The camera's codec is not H.264.
    #[error(
        "this camera sends {0}, which browsers cannot play through Media Source Extensions; configure its H.264 \
         (sub) stream for live viewing"
    )]
    Unsupported(String),
    /// The parameters are not a usable H.264 configuration.
    #[error("the camera's codec parameters cannot be used: {0}")]
    Parameters(Mp4Error),
}

impl LiveMuxer {
    /// The socket messages for one live message, in order.
    pub fn feed(&mut self, msg: &LiveMessage) -> Result<Vec<Out>, LiveMuxError> {
        match msg {
            LiveMessage::Parameters(p) => {
                let track = track_of(p)?;
                if self.writer.as_ref().is_none_or(|w| w.check_parameters(&track).is_err()) {
                    self.track = Some(track);
                    self.need_key = true;
                }
                Ok(Vec::new())
            }
            LiveMessage::Frame(f) => {
                let mut out = Vec::new();
                if self.need_key || self.writer.is_none() {
                    if !f.keyframe {
                        return Ok(out);
                    }
                    let Some(track) = self.track.take().or_else(|| self.writer.as_ref().map(|w| w.track().clone()))
                    else {
                        return Ok(out);
                    };
                    self.start(track, &mut out)?;
                }
                let Some(w) = &mut self.writer else { return Ok(out) };
                // Pts in the camera's clock, rescaled to the track's 90 kHz.
                let pts =
                    i64::try_from(i128::from(f.pts) * 90_000 / i128::from(f.clock_rate.max(1))).unwrap_or(i64::MAX);
                match w.push(Sample { pts, keyframe: f.keyframe, data: &f.data }) {
                    Ok(Some(fragment)) => out.push(Out::Binary(fragment)),
                    Ok(None) => {}
                    // The camera's clock went back (it restarted) or the frame does not fit:
                    // start again at the next key frame, with a fresh init segment.
                    Err(e) if e.is_rejection() => {
                        tracing::debug!("live fMP4: {e}; waiting for a key frame");
                        self.need_key = true;
                    }
                    Err(e) => return Err(LiveMuxError::Parameters(e)),
                }
                Ok(out)
            }
        }
    }

    fn start(&mut self, track: VideoTrack, out: &mut Vec<Out>) -> Result<(), LiveMuxError> {
        let init = match &mut self.writer {
            Some(w) => {
                let (last, init) = w.restart(track).map_err(LiveMuxError::Parameters)?;
                out.extend(last.map(Out::Binary));
                init
            }
            None => {
                let w = FragmentWriter::new(track).map_err(LiveMuxError::Parameters)?.with_max_fragment_samples(1);
                let init = w.init_segment().map_err(LiveMuxError::Parameters)?;
                self.writer = Some(w);
                init
            }
        };
        if let Some(w) = &self.writer {
            out.push(init_message(w));
        }
        out.push(Out::Binary(init));
        self.need_key = false;
        Ok(())
    }
}

fn track_of(p: &VideoParameters) -> Result<VideoTrack, LiveMuxError> {
    if !p.rfc6381_codec.starts_with("avc1") {
        return Err(LiveMuxError::Unsupported(p.rfc6381_codec.clone()));
    }
    Ok(VideoTrack { width: p.width, height: p.height, avcc: p.extra_data.clone(), timescale: 90_000 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::interconnect::MediaFrame;

    fn params(codec: &str) -> LiveMessage {
        // SPS (type 7) and PPS (type 8), minimal but well-formed for the avcC parser.
        let sps = [0x67, 0x42, 0xc0, 0x1e, 0xd9];
        let pps = [0x68, 0xce, 0x3c, 0x80];
        let mut avcc = vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, sps.len() as u8];
        avcc.extend_from_slice(&sps);
        avcc.extend_from_slice(&[1, 0, pps.len() as u8]);
        avcc.extend_from_slice(&pps);
        LiveMessage::Parameters(VideoParameters {
            rfc6381_codec: codec.into(),
            width: 320,
            height: 240,
            extra_data: avcc,
        })
    }

    fn frame(pts: i64, keyframe: bool) -> LiveMessage {
        let nal: &[u8] = if keyframe { &[0x65, 0x88] } else { &[0x41, 0x9a] };
        let data = [&(nal.len() as u32).to_be_bytes()[..], nal].concat();
        LiveMessage::Frame(MediaFrame { pts, clock_rate: 90_000, wall_clock_us: 0, keyframe, data })
    }

    fn kinds(out: &[Out]) -> String {
        out.iter()
            .map(|o| match o {
                Out::Text(t) if t.contains("\"init\"") => 'T',
                Out::Text(_) => 't',
                Out::Binary(b) if &b[4..8] == b"ftyp" => 'I',
                Out::Binary(b) if &b[4..8] == b"moof" => 'F',
                Out::Binary(_) => '?',
            })
            .collect()
    }

    #[test]
    fn init_at_the_first_key_frame_then_a_fragment_per_frame() {
        let mut m = LiveMuxer::default();
        let mut seen = String::new();
        for msg in [params("avc1.42c01e"), frame(0, false), frame(3000, true), frame(6000, false), frame(9000, false)] {
            seen += &kinds(&m.feed(&msg).unwrap());
        }
        assert_eq!(seen, "TIFF", "the frame before the key frame is dropped; each frame goes out one frame late");
        // The camera restarted: its clock begins again; a fresh init comes with the next key frame.
        let mut after = String::new();
        for msg in [frame(100, false), frame(200, true), frame(3200, false)] {
            after += &kinds(&m.feed(&msg).unwrap());
        }
        assert_eq!(after, "FTIF");
    }

    #[test]
    fn h265_is_refused_plainly() {
        let err = LiveMuxer::default().feed(&params("hvc1.1.6.L93.B0")).err().unwrap();
        assert!(err.to_string().contains("hvc1.1.6.L93.B0") && err.to_string().contains("H.264"), "{err}");
    }
}

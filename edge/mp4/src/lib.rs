//! Convoy's MP4 writer: turns recorded H.264 frames (AVCC framing, codec parameters as an
//! AVCDecoderConfigurationRecord), and AAC or G.711 audio beside them, into standard MP4 files
//! that common players and ffmpeg accept.
//!
//! ```no_run
//! use mp4_export::{Mp4Writer, Sample, VideoTrack};
//! # fn frames() -> Vec<(i64, bool, Vec<u8>)> { Vec::new() }
//! # fn main() -> Result<(), mp4_export::Mp4Error> {
//! # let extra_data = Vec::new();
//! let mut file = std::fs::File::create("export.mp4")?;
//! let track = VideoTrack { width: 1280, height: 720, avcc: extra_data, timescale: 90_000 };
//! let mut mp4 = Mp4Writer::new(&mut file, track)?;
//! for (pts, keyframe, data) in frames() {
//!     mp4.push(Sample { pts, keyframe, data: &data })?;
//! }
//! let summary = mp4.finish()?;
//! file.sync_all()?;
//! println!("{} frames, {:?}", summary.samples, summary.duration());
//! # Ok(()) }
//! ```
//!
//! Layers, bottom up: [`boxes`] (box writer), [`avc`] (avcC record, NAL units), the sample
//! tables (`sample_table`: compact `stts`/`stss`/`stsz`/`stsc`/`stco`), the movie boxes
//! (`movie`: `ftyp`, `mvhd`, video `trak`; `audio`: the audio `trak`), then [`Mp4Writer`] (progressive MP4) and
//! [`FragmentWriter`] (fragmented MP4 for browsers: an init segment, the same `moov` with empty
//! tables plus `mvex`, then `moof`/`mdat` media segments).

mod audio;
pub mod avc;
pub mod boxes;
mod error;
mod fragmented;
mod movie;
mod progressive;
mod sample_table;

pub use error::Mp4Error;
pub use fragmented::FragmentWriter;
pub use progressive::{ExportSummary, Mp4Writer};

/// Codec parameters of the one video track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    /// Picture width in pixels (1..=65535).
    pub width: u32,
    /// Picture height in pixels (1..=65535).
    pub height: u32,
    /// AVCDecoderConfigurationRecord, e.g. `retina::codec::VideoParameters::extra_data()`.
    pub avcc: Vec<u8>,
    /// Units per second of the samples' pts (the RTP clock rate, normally 90000).
    pub timescale: u32,
}

/// The codec of an [`AudioTrack`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AudioCodec {
    /// AAC: an `mp4a` sample entry with the `AudioSpecificConfig` in its `esds`.
    Aac,
    /// G.711 µ-law: a QuickTime-style `ulaw` sample entry.
    Ulaw,
    /// G.711 A-law: an `alaw` sample entry.
    Alaw,
}

/// The audio track of a progressive MP4 ([`Mp4Writer::add_audio`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioTrack {
    /// AAC or G.711.
    pub codec: AudioCodec,
    /// Samples per second; also the track's timescale (1..=65535).
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// The AAC `AudioSpecificConfig` (e.g. `retina::codec::AudioParameters::extra_data()`);
    /// empty for G.711.
    pub audio_specific_config: Vec<u8>,
}

/// One AAC access unit (raw, no ADTS header), or a run of G.711 samples (a byte each).
#[derive(Debug, Clone, Copy)]
pub struct AudioSample<'a> {
    /// Presentation time in samples from the file's start (the first video sample's time);
    /// must increase from sample to sample.
    pub pts: i64,
    /// The access unit.
    pub data: &'a [u8],
}

/// One access unit.
#[derive(Debug, Clone, Copy)]
pub struct Sample<'a> {
    /// Presentation time in timescale units; must increase from sample to sample.
    pub pts: i64,
    /// True for a key frame (IDR): a decoder can start here.
    pub keyframe: bool,
    /// NAL units, each prefixed with its big-endian length (the avcC's length size, normally 4).
    pub data: &'a [u8],
}

//! The crate's one error type.

use thiserror::Error;

/// Everything that can go wrong while writing an MP4.
///
/// Errors found while *checking* a sample ([`Mp4Error::is_rejection`]) leave the writer unchanged:
/// the sample was not written and the caller may skip it and go on. Any other error (I/O) leaves
/// the output in an unknown state and the writer refuses further work ([`Mp4Error::Poisoned`]).
#[derive(Debug, Error)]
pub enum Mp4Error {
    /// Reading or writing the output failed.
    #[error("I/O error writing MP4: {0}")]
    Io(#[from] std::io::Error),

    /// The `extra_data` is not an AVCDecoderConfigurationRecord this writer can use.
    #[error("codec extra_data is not a usable avcC record: {0}")]
    InvalidAvcC(&'static str),

    /// The audio track cannot be written (a bad `AudioSpecificConfig`, sample rate or
    /// channel count, or audio added twice).
    #[error("invalid audio track: {0}")]
    InvalidAudio(&'static str),

    /// Width, height or timescale out of range.
    #[error("invalid video track: {0}")]
    InvalidTrack(&'static str),

    /// `finish` was called without any sample.
    #[error("no samples to export")]
    Empty,

    /// The first sample of a file, and the first after new parameters, must be a key frame
    /// (decoders start there).
    #[error("the first sample is not a key frame")]
    FirstNotKeyframe,

    /// Sample presentation times must strictly increase (B-frames are not supported).
    #[error("sample {index}: pts {pts} is not after the previous pts {previous}")]
    PtsNotIncreasing {
        /// Zero-based index the rejected sample would have had.
        index: u64,
        /// The previous sample's pts.
        previous: i64,
        /// The rejected sample's pts.
        pts: i64,
    },

    /// The sample's data is not a sequence of length-prefixed NAL units.
    #[error("sample {index}: malformed AVCC data: {reason}")]
    InvalidSample {
        /// Zero-based index the rejected sample would have had.
        index: u64,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Codec parameters differ from the ones the file was started with (an in-band SPS/PPS that
    /// is not in the avcC record, or [`crate::Mp4Writer::check_parameters`] with other values).
    /// Start a new file at the next key frame.
    #[error("codec parameters changed mid-run: {0}")]
    ParametersChanged(&'static str),

    /// A limit of the MP4 format (32-bit sample count or box size) would be exceeded.
    #[error("MP4 format limit exceeded: {0}")]
    TooLarge(&'static str),

    /// An earlier I/O error left the output in an unknown state.
    #[error("the writer failed earlier and cannot continue")]
    Poisoned,
}

impl Mp4Error {
    /// True for errors that reject one sample or call without touching the output: the writer
    /// can still be used.
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Mp4Error::FirstNotKeyframe
                | Mp4Error::PtsNotIncreasing { .. }
                | Mp4Error::InvalidSample { .. }
                | Mp4Error::ParametersChanged(_)
                | Mp4Error::TooLarge(_)
                | Mp4Error::InvalidAudio(_)
        )
    }
}

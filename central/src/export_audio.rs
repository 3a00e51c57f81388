//! The audio track of central's MP4 export: the audio frames central retrieved from a unit of
//! protocol version 4 (AAC as `mp4a`, G.711 as `ulaw`/`alaw`, written by `mp4-export`), placed
//! on the video's timeline by the unit's receive times, window by window as the video is
//! written. Audio that cannot be written (another codec, parameters that change mid-file) is
//! left out with a log line; it never fails the export.

use std::path::PathBuf;

use media_store::StoredAudioParameters;
use media_store::by_seq::SeqFrame;
use mp4_export::{AudioCodec, AudioSample, AudioTrack, Mp4Writer};

use crate::playback::{TIMESCALE, TimedFrame};
use crate::retrieved::{RetrievedError, read_held_audio};

/// The audio of one export, fed each window of video frames as it is written.
pub struct ExportAudio {
    dir: PathBuf,
    unit: String,
    camera: String,
    /// Audio frames up to this wall-clock time (µs) have been read.
    read_up_to_us: Option<i64>,
    /// The last video frame written: (wall µs, ticks), where the next window's audio is placed
    /// from when it starts before that window's first frame.
    anchor: Option<(i64, i64)>,
    /// The pts (in samples) of the last audio sample written.
    last_pts: Option<i64>,
    /// Why audio is left out, once logged.
    left_out: bool,
}

/// The MP4 audio track of stored audio parameters, or why there is none.
pub fn audio_track(p: &StoredAudioParameters) -> Result<AudioTrack, String> {
    let codec = match p.codec.as_str() {
        c if c.starts_with("mp4a.40") => AudioCodec::Aac,
        "ulaw" => AudioCodec::Ulaw,
        "alaw" => AudioCodec::Alaw,
        other => {
            return Err(format!("{other} audio stays in central's store: the MP4 export writes AAC and G.711 only"));
        }
    };
    Ok(AudioTrack {
        codec,
        sample_rate: p.sample_rate,
        channels: p.channels,
        audio_specific_config: p.extra_data.clone(),
    })
}

impl ExportAudio {
    /// The audio of `unit`'s `camera` in central's store at `dir`.
    pub fn new(dir: PathBuf, unit: &str, camera: &str) -> ExportAudio {
        ExportAudio {
            dir,
            unit: unit.to_owned(),
            camera: camera.to_owned(),
            read_up_to_us: None,
            anchor: None,
            last_pts: None,
            left_out: false,
        }
    }

    /// Writes the audio that goes with a window of video frames just written: the held audio
    /// frames from the first video frame's time (for the first window) or the end of the last
    /// window, up to the last video frame of this one. Returns the audio frames written.
    pub fn window<W: std::io::Write + std::io::Seek>(
        &mut self,
        w: &mut Mp4Writer<W>,
        video: &[TimedFrame],
    ) -> Result<u64, RetrievedError> {
        let (Some(first), Some(last)) = (video.first(), video.last()) else { return Ok(0) };
        let from = self.read_up_to_us.map_or(first.frame.frame.wall_clock_us, |t| t + 1);
        let to = last.frame.frame.wall_clock_us;
        if to < from {
            return Ok(0);
        }
        self.read_up_to_us = Some(to);
        let audio = read_held_audio(&self.dir, &self.unit, &self.camera, from, to)?;
        let mut anchors = video.iter().map(|f| (f.frame.frame.wall_clock_us, f.ticks)).peekable();
        let mut written = 0;
        for a in &audio {
            while let Some(next) = anchors.next_if(|(wall, _)| *wall <= a.frame.wall_clock_us) {
                self.anchor = Some(next);
            }
            if self.push(w, a) {
                written += 1;
            }
        }
        if let Some(a) = video.last() {
            self.anchor = Some((a.frame.frame.wall_clock_us, a.ticks));
        }
        Ok(written)
    }

    /// Writes one audio frame at its place: the time of the video frame before it plus the
    /// receive-time difference, in samples. False when it is left out.
    fn push<W: std::io::Write + std::io::Seek>(&mut self, w: &mut Mp4Writer<W>, a: &SeqFrame) -> bool {
        let Some((anchor_wall, anchor_ticks)) = self.anchor else { return false };
        let Some(p) = &a.audio_parameters else { return false };
        let track = match audio_track(p) {
            Ok(t) => t,
            Err(why) => return self.leave_out(&why),
        };
        match w.audio_track() {
            None => {
                if let Err(e) = w.add_audio(track.clone()) {
                    return self.leave_out(&e.to_string());
                }
            }
            Some(t) if *t != track => return self.leave_out("the camera's audio parameters changed"),
            Some(_) => {}
        }
        let rate = i128::from(track.sample_rate);
        let samples = i128::from(anchor_ticks) * rate / i128::from(TIMESCALE)
            + i128::from(a.frame.wall_clock_us - anchor_wall) * rate / 1_000_000;
        let pts = samples as i64;
        if self.last_pts.is_some_and(|l| pts <= l) || pts < 0 {
            tracing::debug!(camera = %self.camera, pts, "export skips an audio frame out of order");
            return false;
        }
        match w.push_audio(AudioSample { pts, data: &a.frame.data }) {
            Ok(()) => {
                self.last_pts = Some(pts);
                true
            }
            Err(e) => {
                tracing::debug!(camera = %self.camera, "export skips an audio frame: {e}");
                false
            }
        }
    }

    fn leave_out(&mut self, why: &str) -> bool {
        if !self.left_out {
            tracing::info!(unit = %self.unit, camera = %self.camera, "export without (some) audio: {why}");
            self.left_out = true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(codec: &str) -> StoredAudioParameters {
        StoredAudioParameters {
            camera: "u/front".into(),
            codec: codec.into(),
            sample_rate: 16_000,
            channels: 1,
            extra_data: vec![0x14, 0x08],
        }
    }

    #[test]
    fn aac_and_g711_become_tracks_and_other_codecs_say_why_not() {
        assert_eq!(audio_track(&params("mp4a.40.2")).unwrap().codec, AudioCodec::Aac);
        assert_eq!(audio_track(&params("ulaw")).unwrap().codec, AudioCodec::Ulaw);
        assert_eq!(audio_track(&params("alaw")).unwrap().codec, AudioCodec::Alaw);
        let why = audio_track(&params("opus")).unwrap_err();
        assert!(why.contains("opus") && why.contains("AAC and G.711"), "{why}");
    }
}

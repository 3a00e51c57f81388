//! Real AAC from ffmpeg's encoder beside real H.264 through the writer, checked by ffprobe and
//! a full ffmpeg decode.

mod common;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;

use common::*;
use mp4_export::{AudioCodec, AudioSample, AudioTrack, Mp4Writer, Sample, VideoTrack};

/// `seconds` of a 440 Hz tone as AAC-LC, mono at 48 kHz: the raw access units and the
/// `AudioSpecificConfig`, taken out of ffmpeg's ADTS stream.
fn aac_stream(dir: &Path, seconds: u32) -> (Vec<Vec<u8>>, Vec<u8>) {
    let path = dir.join("tone.aac");
    let output = Command::new(FFMPEG)
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", &seconds.to_string(), "-ac", "1", "-c:a", "aac", "-f", "adts"])
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let adts = std::fs::read(&path).unwrap();
    let (mut frames, mut asc, mut pos) = (Vec::new(), Vec::new(), 0);
    while pos + 7 <= adts.len() {
        let h = &adts[pos..pos + 7];
        assert_eq!((h[0], h[1] & 0xf0), (0xff, 0xf0), "ADTS sync at {pos}");
        let header_len = if h[1] & 1 == 1 { 7 } else { 9 };
        let len = (usize::from(h[3] & 3) << 11) | (usize::from(h[4]) << 3) | usize::from(h[5] >> 5);
        if asc.is_empty() {
            let object = (h[2] >> 6) + 1;
            let rate_index = (h[2] >> 2) & 0xf;
            let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
            asc = vec![(object << 3) | (rate_index >> 1), ((rate_index & 1) << 7) | (channels << 3)];
        }
        frames.push(adts[pos + header_len..pos + len].to_vec());
        pos += len;
    }
    (frames, asc)
}

#[test]
fn aac_beside_h264_becomes_an_mp4_with_two_valid_streams() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    let (audio, asc) = aac_stream(dir.path(), 4);
    assert_eq!(asc, [0x11, 0x88], "AAC-LC, 48 kHz, mono");
    let path = dir.path().join("av.mp4");
    let mut file = BufWriter::new(File::create(&path).unwrap());
    let mut w = Mp4Writer::new(&mut file, VideoTrack { width: 320, height: 240, avcc, timescale: 90_000 }).unwrap();
    w.add_audio(AudioTrack { codec: AudioCodec::Aac, sample_rate: 48_000, channels: 1, audio_specific_config: asc })
        .unwrap();
    // Interleaved as a camera sends them; the audio starts 0.2 s after the video.
    let mut next_audio = 0;
    for (i, au) in aus.iter().enumerate() {
        let t = i as i64 * 3600;
        w.push(Sample { pts: t, keyframe: au.keyframe, data: &au.to_avcc(false) }).unwrap();
        while next_audio < audio.len() && (9_600 + next_audio as i64 * 1024) * 90_000 / 48_000 <= t {
            let pts = 9_600 + next_audio as i64 * 1024;
            w.push_audio(AudioSample { pts, data: &audio[next_audio] }).unwrap();
            next_audio += 1;
        }
    }
    let summary = w.finish().unwrap();
    file.flush().unwrap();
    drop(file);
    assert_eq!(summary.samples, 100);
    assert!(summary.audio_samples > 150, "{summary:?}");

    let probe = ffprobe(&path, &[]);
    let streams = probe["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 2, "{probe:#}");
    let (video, sound) = (&streams[0], &streams[1]);
    assert_eq!(video["codec_name"], "h264");
    assert_eq!(sound["codec_name"], "aac", "{probe:#}");
    assert_eq!(sound["profile"], "LC");
    assert_eq!(sound["sample_rate"], "48000");
    assert_eq!(sound["channels"], 1);
    assert_eq!(number(&sound["nb_read_frames"]) as u64, summary.audio_samples);
    // The audio track starts 0.2 s in (its empty edit) and ends about with the video.
    let start = number(&sound["start_time"]);
    assert!((start - 0.2).abs() < 0.01, "audio start {start}: {probe:#}");
    let end = start + number(&sound["duration"]);
    assert!((end - 4.0).abs() < 0.1, "audio ends at {end}");
    decode_cleanly(&path, &[]);
}

/// `seconds` of a tone as G.711 (`mulaw` or `alaw`) at 8 kHz, mono, in 20 ms runs as RTP
/// carries them.
fn g711_stream(dir: &Path, format: &str, seconds: u32) -> Vec<Vec<u8>> {
    let path = dir.join(format!("tone.{format}"));
    let output = Command::new(FFMPEG)
        .args(["-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=8000"])
        .args(["-t", &seconds.to_string(), "-ac", "1", "-f", format])
        .arg(&path)
        .output()
        .expect("run ffmpeg");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    std::fs::read(&path).unwrap().chunks(160).map(<[u8]>::to_vec).collect()
}

#[test]
fn g711_beside_h264_becomes_an_mp4_ffprobe_reads() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    for (codec, format, name) in [(AudioCodec::Ulaw, "mulaw", "pcm_mulaw"), (AudioCodec::Alaw, "alaw", "pcm_alaw")] {
        let runs = g711_stream(dir.path(), format, 4);
        let path = dir.path().join(format!("{format}.mp4"));
        let mut file = BufWriter::new(File::create(&path).unwrap());
        let video = VideoTrack { width: 320, height: 240, avcc: avcc.clone(), timescale: 90_000 };
        let mut w = Mp4Writer::new(&mut file, video).unwrap();
        let track = AudioTrack { codec, sample_rate: 8_000, channels: 1, audio_specific_config: Vec::new() };
        w.add_audio(track).unwrap();
        let mut next = 0;
        for (i, au) in aus.iter().enumerate() {
            let t = i as i64 * 3600;
            w.push(Sample { pts: t, keyframe: au.keyframe, data: &au.to_avcc(false) }).unwrap();
            while next < runs.len() && next as i64 * 160 * 90_000 / 8_000 <= t {
                w.push_audio(AudioSample { pts: next as i64 * 160, data: &runs[next] }).unwrap();
                next += 1;
            }
        }
        let summary = w.finish().unwrap();
        file.flush().unwrap();
        drop(file);
        let probe = ffprobe(&path, &[]);
        let sound = &probe["streams"][1];
        assert_eq!(sound["codec_name"], name, "{probe:#}");
        assert_eq!((&sound["sample_rate"], &sound["channels"]), (&serde_json::json!("8000"), &serde_json::json!(1)));
        assert!(summary.audio_samples > 190, "{summary:?}");
        let d = number(&sound["duration"]);
        assert!((d - 4.0).abs() < 0.1, "{format}: {d} s: {probe:#}");
        decode_cleanly(&path, &[]);
    }
}

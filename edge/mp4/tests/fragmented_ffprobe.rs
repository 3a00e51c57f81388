//! Real H.264 from x264 through the fragmented writer: the init segment followed by its media
//! segments is one fMP4 that ffprobe and ffmpeg read whole, per GOP and per frame.

mod common;

use common::*;
use mp4_export::{FragmentWriter, Sample, VideoTrack};

const FRAME_TICKS: i64 = 3600; // 90 kHz / 25 fps

fn track(avcc: Vec<u8>) -> VideoTrack {
    VideoTrack { width: 320, height: 240, avcc, timescale: 90_000 }
}

/// Init segment then every fragment, as one byte stream; also the number of fragments.
fn fragmented(aus: &[AccessUnit], avcc: Vec<u8>, per_fragment: usize) -> (Vec<u8>, usize) {
    let mut w = FragmentWriter::new(track(avcc)).unwrap().with_max_fragment_samples(per_fragment);
    let mut out = w.init_segment().unwrap();
    let mut fragments = 0;
    for (i, au) in aus.iter().enumerate() {
        let data = au.to_avcc(true);
        if let Some(f) =
            w.push(Sample { pts: 5_000 + i as i64 * FRAME_TICKS, keyframe: au.keyframe, data: &data }).unwrap()
        {
            out.extend_from_slice(&f);
            fragments += 1;
        }
    }
    out.extend_from_slice(&w.flush().unwrap().unwrap());
    (out, fragments + 1)
}

fn check(bytes: &[u8], dir: &std::path::Path, frames: u64, seconds: f64) {
    let path = dir.join("out.mp4");
    std::fs::write(&path, bytes).unwrap();
    let probe = ffprobe(&path, &[]);
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264", "{probe:#}");
    assert_eq!((stream["width"].as_u64(), stream["height"].as_u64()), (Some(320), Some(240)));
    assert_eq!(number(&stream["nb_read_frames"]) as u64, frames, "{probe:#}");
    let duration = number(&probe["format"]["duration"]);
    assert!((duration - seconds).abs() <= 0.05, "duration {duration}, want {seconds}: {probe:#}");
    decode_cleanly(&path, &[]);
}

#[test]
fn init_and_fragments_per_gop_are_one_valid_fmp4() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    let (bytes, fragments) = fragmented(&aus, avcc, 1000);
    assert_eq!(fragments, 4, "one fragment per 2 s GOP");
    check(&bytes, dir.path(), 100, 4.0);
}

#[test]
fn init_and_a_fragment_per_frame_are_one_valid_fmp4() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 2);
    let (bytes, fragments) = fragmented(&aus, avcc, 1);
    assert_eq!(fragments, 50);
    check(&bytes, dir.path(), 50, 2.0);
}

#[test]
fn after_new_parameters_the_new_init_segment_and_its_fragments_play_on() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 2);
    let mut w = FragmentWriter::new(track(avcc.clone())).unwrap();
    for (i, au) in aus.iter().take(50).enumerate() {
        w.push(Sample { pts: i as i64 * FRAME_TICKS, keyframe: au.keyframe, data: &au.to_avcc(true) }).unwrap();
    }
    // Same stream again as if the camera restarted with (byte-wise) other parameters: an avcC
    // with other profile-compatibility bits is another record for the writer.
    let mut other = avcc.clone();
    other[2] ^= 0x01;
    assert_ne!(other, avcc);
    let (last, init) = w.restart(track(other)).unwrap();
    assert!(last.is_some());
    let mut second = init;
    for (i, au) in aus.iter().enumerate() {
        if let Some(f) =
            w.push(Sample { pts: i as i64 * FRAME_TICKS, keyframe: au.keyframe, data: &au.to_avcc(true) }).unwrap()
        {
            second.extend_from_slice(&f);
        }
    }
    second.extend_from_slice(&w.flush().unwrap().unwrap());
    // Its decode times start at 2 s, where the first part ended.
    let path = dir.path().join("second.mp4");
    std::fs::write(&path, &second).unwrap();
    let probe = ffprobe(&path, &["-show_entries", "packet=pts_time"]);
    assert_eq!(number(&probe["streams"][0]["nb_read_frames"]) as u64, 50, "{probe:#}");
    decode_cleanly(&path, &[]);
    let start = number(&probe["streams"][0]["start_time"]);
    assert!((start - 2.0).abs() < 0.01, "the timeline goes on at 2 s: {start}");
}

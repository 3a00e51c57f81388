//! Real H.264 from x264 through the writer, checked by ffprobe and a full ffmpeg decode.

mod common;

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};

use common::*;
use mp4_export::{ExportSummary, Mp4Writer, Sample, VideoTrack};

const FRAME_TICKS: i64 = 3600; // 90 kHz / 25 fps

fn track(avcc: Vec<u8>) -> VideoTrack {
    VideoTrack { width: 320, height: 240, avcc, timescale: 90_000 }
}

/// Writes `aus` with the given pts to `out`.
fn export<W: Write + Seek>(
    out: W,
    aus: &[AccessUnit],
    avcc: Vec<u8>,
    pts: impl Fn(usize) -> i64,
    keep_parameter_sets: bool,
) -> ExportSummary {
    let mut w = Mp4Writer::new(out, track(avcc)).unwrap();
    for (i, au) in aus.iter().enumerate() {
        let data = au.to_avcc(keep_parameter_sets);
        w.push(Sample { pts: pts(i), keyframe: au.keyframe, data: &data }).unwrap();
    }
    w.finish().unwrap()
}

/// One 320x240 H.264 stream of `frames` (decoded ones when probed with `-count_frames`) and
/// `duration` seconds (±0.05).
fn assert_stream(probe: &serde_json::Value, frames: u64, duration: f64) {
    let stream = &probe["streams"][0];
    assert_eq!(probe["streams"].as_array().unwrap().len(), 1, "{probe:#}");
    assert_eq!(stream["codec_name"], "h264", "{probe:#}");
    assert_eq!(stream["width"], 320);
    assert_eq!(stream["height"], 240);
    let counted = if stream["nb_read_frames"].is_null() { &stream["nb_frames"] } else { &stream["nb_read_frames"] };
    assert_eq!(number(counted) as u64, frames, "{probe:#}");
    let got = number(&probe["format"]["duration"]);
    assert!((got - duration).abs() <= 0.05, "format duration {got}, want {duration}: {probe:#}");
    let got = number(&stream["duration"]);
    assert!((got - duration).abs() <= 0.05, "stream duration {got}, want {duration}");
}

#[test]
fn x264_stream_becomes_a_valid_mp4() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    assert_eq!(aus.len(), 100, "access units in 4 s at 25 fps");
    assert_eq!(aus.iter().filter(|au| au.keyframe).count(), 4);

    let path = dir.path().join("out.mp4");
    let mut file = BufWriter::new(File::create(&path).unwrap());
    // Timestamps as a camera gives them: an arbitrary, here negative, start.
    let start = -123_456_789;
    let summary = export(&mut file, &aus, avcc, |i| start + i as i64 * FRAME_TICKS, true);
    file.flush().unwrap();
    assert_eq!(summary.samples, 100);
    assert_eq!(summary.keyframes, 4);
    assert_eq!(summary.duration_ticks, 100 * FRAME_TICKS as u64);
    assert_eq!(summary.gaps, 0);
    assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());

    let probe = ffprobe(&path, &[]);
    assert_stream(&probe, 100, 4.0);
    assert_eq!(probe["streams"][0]["r_frame_rate"], "25/1", "{probe:#}");
    assert_eq!(number(&probe["streams"][0]["start_time"]), 0.0);
    decode_cleanly(&path, &[]);
}

#[test]
fn gap_in_pts_still_gives_a_valid_mp4() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    let path = dir.path().join("gap.mp4");
    let file = File::create(&path).unwrap();
    // 20 s of recording missing before frame 50 (a key frame) and 300 ms before frame 80.
    let pts = |i: usize| {
        let mut t = i as i64 * FRAME_TICKS;
        if i >= 50 {
            t += 20 * 90_000;
        }
        if i >= 80 {
            t += 27_000;
        }
        t
    };
    // Parameter sets only out of band this time.
    let summary = export(file, &aus, avcc, pts, false);
    assert_eq!(summary.samples, 100);
    assert_eq!(summary.gaps, 1);
    // The frame before the 20 s gap lasts 1 s; the 300 ms gap is kept as it is.
    let want_ticks = 98 * 3600 + 90_000 + (3600 + 27_000);
    assert_eq!(summary.duration_ticks, want_ticks);
    assert_eq!(summary.gap_ticks_removed, 20 * 90_000 + 3600 - 90_000);

    let probe = ffprobe(&path, &[]);
    assert_stream(&probe, 100, want_ticks as f64 / 90_000.0);
    decode_cleanly(&path, &[]);
}

/// Offsets past 4 GiB (`co64`) without writing 4 GiB: the MP4 starts 4.5 GiB into a sparse
/// file, behind a 64-bit `free` box that covers the hole, so the chunk offsets are large.
#[test]
fn chunk_offsets_past_4_gib_are_read_back_by_ffmpeg() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    let path = dir.path().join("far.mp4");
    let mut file = File::create(&path).unwrap();
    let hole: u64 = 4 << 30 | 1 << 29;
    file.write_all(&1u32.to_be_bytes()).unwrap();
    file.write_all(b"free").unwrap();
    file.write_all(&hole.to_be_bytes()).unwrap();
    file.seek(SeekFrom::Start(hole)).unwrap();
    let summary = export(&mut file, &aus, avcc, |i| i as i64 * FRAME_TICKS, true);
    assert_eq!(summary.bytes + hole, file.metadata().unwrap().len());

    let bytes = read_tail(&path, hole);
    assert!(bytes.windows(4).any(|w| w == b"co64"), "tables must use co64");
    assert!(!bytes.windows(4).any(|w| w == b"stco"));

    let probe = ffprobe(&path, &["-f", "mp4"]);
    assert_stream(&probe, 100, 4.0);
    decode_cleanly(&path, &["-f", "mp4"]);
}

fn read_tail(path: &std::path::Path, from: u64) -> Vec<u8> {
    use std::io::Read;
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(from)).unwrap();
    let mut out = Vec::new();
    f.read_to_end(&mut out).unwrap();
    out
}

/// Writes large writes sparsely: the head of a write goes to the file, the rest becomes a hole
/// (reads back as zeros). Only used where the caller knows the rest is zeros.
struct SparseFile {
    file: File,
}

const SPARSE_HEAD: usize = 64 * 1024;

impl Write for SparseFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() <= 1 << 20 {
            return self.file.write(buf);
        }
        self.file.write_all(&buf[..SPARSE_HEAD])?;
        self.file.seek(SeekFrom::Current((buf.len() - SPARSE_HEAD) as i64))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for SparseFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

/// An `mdat` over 4 GiB (64-bit box size): every frame carries a 44 MB filler-data NAL
/// (type 12, which decoders drop) whose zero payload is a hole in a sparse file. ffmpeg only
/// finds `moov` after the `mdat` if the 64-bit size is right.
#[test]
fn mdat_over_4_gib_uses_64_bit_sizes() {
    if skip_without_ffprobe() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (aus, avcc) = test_stream(dir.path(), 4);
    let path = dir.path().join("big.mp4");
    let mut out = SparseFile { file: File::create(&path).unwrap() };
    // Every sample is exactly this long: the frame, then a filler NAL for the rest.
    const SAMPLE: usize = 44_000_000;
    let mut w = Mp4Writer::new(&mut out, track(avcc)).unwrap();
    let mut data = vec![0u8; SAMPLE];
    for (i, au) in aus.iter().enumerate() {
        let frame = au.to_avcc(true);
        assert!(frame.len() + 5 < SPARSE_HEAD, "frame must land before the hole");
        // Only the head is ever non-zero; the zeros after it are the filler's payload.
        data[..SPARSE_HEAD].fill(0);
        data[..frame.len()].copy_from_slice(&frame);
        let filler_len = (SAMPLE - frame.len() - 4) as u32;
        data[frame.len()..frame.len() + 4].copy_from_slice(&filler_len.to_be_bytes());
        data[frame.len() + 4] = 0x0c; // filler data NAL header
        w.push(Sample { pts: i as i64 * FRAME_TICKS, keyframe: au.keyframe, data: &data }).unwrap();
    }
    let summary = w.finish().unwrap();
    assert!(summary.bytes > 1 << 32);
    assert_eq!(summary.bytes, out.file.metadata().unwrap().len());

    // The mdat header: size 1 and a 64-bit size right after ftyp.
    let head = read_range(&path, 0, 64);
    let ftyp_len = u32::from_be_bytes(head[0..4].try_into().unwrap()) as usize;
    assert_eq!(&head[ftyp_len..ftyp_len + 8], &[0, 0, 0, 1, b'm', b'd', b'a', b't']);
    let mdat_size = u64::from_be_bytes(head[ftyp_len + 8..ftyp_len + 16].try_into().unwrap());
    let tail = read_tail(&path, ftyp_len as u64 + mdat_size);
    assert_eq!(&tail[4..8], b"moov");
    // The last chunk (key frame 75) starts at 3.3 GB: 32-bit chunk offsets still do.
    assert!(tail.windows(4).any(|w| w == b"stco"));

    // Reading all 4.4 GB (holes included) takes ffmpeg half a minute: probe the headers, and
    // decode from the last key frame, whose GOP ends past 4 GiB.
    let probe = ffprobe_headers(&path);
    assert_stream(&probe, 100, 4.0);
    decode_cleanly(&path, &["-ss", "3.5"]);
}

fn read_range(path: &std::path::Path, from: u64, len: usize) -> Vec<u8> {
    use std::io::Read;
    let mut f = File::open(path).unwrap();
    f.seek(SeekFrom::Start(from)).unwrap();
    let mut out = vec![0; len];
    f.read_exact(&mut out).unwrap();
    out
}

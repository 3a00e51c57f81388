//! The sample tables of a progressive MP4 (`stts`, `stss`, `stsz`, `stsc`, `stco`/`co64`),
//! accumulated compactly while samples stream out.
//!
//! Memory per sample is one `u32` (its size) plus one `u32` per key frame; durations and
//! chunk layouts are run-length encoded, chunk offsets cost 8 bytes per chunk. A 24-hour export
//! at 25 frames/s holds about 9 MB here, whatever the media's size.

use crate::Mp4Error;
use crate::boxes::BoxBuf;

/// A chunk is closed after this many samples even without a key frame.
const MAX_CHUNK_SAMPLES: u32 = 250;

/// Sample tables of one track.
#[derive(Debug, Default, Clone)]
pub struct SampleTable {
    /// `stsz`: size of every sample.
    sizes: Vec<u32>,
    /// `stss`: 1-based numbers of the sync samples.
    sync: Vec<u32>,
    /// `stts`: (sample count, sample delta) runs.
    deltas: Vec<(u32, u32)>,
    /// Sum of all durations.
    duration: u64,
    /// `stco`/`co64`: file offset of every chunk.
    chunk_offsets: Vec<u64>,
    /// `stsc`: (first chunk, samples per chunk, sample description) runs, for every chunk but
    /// the open one.
    chunk_runs: Vec<(u32, u32, u32)>,
    /// Samples in the open (last) chunk.
    open_chunk_samples: u32,
    /// 1-based sample description of the open chunk (0 before the first sample: 1).
    open_description: u32,
    /// The sample description of the samples added from now on.
    description: u32,
    /// Where the next sample must start to continue the open chunk.
    next_offset: u64,
    /// Every sample is a sync sample (audio): sync samples do not start chunks.
    all_sync: bool,
}

impl SampleTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table of a track whose samples are all sync samples (audio): chunks are cut
    /// only where the samples are not contiguous or after [`MAX_CHUNK_SAMPLES`].
    pub fn all_sync() -> Self {
        Self { all_sync: true, ..Self::default() }
    }

    /// Number of samples added.
    pub fn len(&self) -> u64 {
        self.sizes.len() as u64
    }

    /// True before the first sample.
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }

    /// Number of sync (key frame) samples.
    pub fn sync_count(&self) -> u64 {
        self.sync.len() as u64
    }

    /// Sum of the durations given so far.
    pub fn duration(&self) -> u64 {
        self.duration
    }

    /// Checks that one more sample fits the 32-bit tables.
    pub fn check_room(&self) -> Result<(), Mp4Error> {
        if self.sizes.len() >= u32::MAX as usize {
            return Err(Mp4Error::TooLarge("more than 2^32-1 samples"));
        }
        Ok(())
    }

    /// Makes the samples added from now on use sample description `index` (1-based; the
    /// default is 1). They start a new chunk.
    pub fn set_description(&mut self, index: u32) {
        self.description = index.max(1);
    }

    /// Adds a sample stored at file `offset`. A new chunk starts at every key frame, when the
    /// sample does not directly follow the previous one, after [`MAX_CHUNK_SAMPLES`], and with
    /// another sample description.
    pub fn add_sample(&mut self, offset: u64, size: u32, sync: bool) -> Result<(), Mp4Error> {
        self.check_room()?;
        let description = self.description.max(1);
        let new_chunk = self.chunk_offsets.is_empty()
            || (sync && !self.all_sync)
            || offset != self.next_offset
            || self.open_chunk_samples >= MAX_CHUNK_SAMPLES
            || description != self.open_description;
        if new_chunk {
            if !self.chunk_offsets.is_empty() {
                let closed = self.chunk_offsets.len() as u32; // 1-based number of the open chunk
                let run = (self.open_chunk_samples, self.open_description);
                if self.chunk_runs.last().map(|&(_, n, d)| (n, d)) != Some(run) {
                    self.chunk_runs.push((closed, run.0, run.1));
                }
            }
            self.chunk_offsets.push(offset);
            self.open_chunk_samples = 0;
            self.open_description = description;
        }
        self.open_chunk_samples += 1;
        self.next_offset = offset + u64::from(size);
        self.sizes.push(size);
        if sync {
            self.sync.push(self.sizes.len() as u32);
        }
        Ok(())
    }

    /// Gives the next sample without a duration (in order) its duration. Call once per sample,
    /// after its `add_sample`.
    pub fn add_duration(&mut self, delta: u32) {
        self.duration += u64::from(delta);
        match self.deltas.last_mut() {
            Some((count, d)) if *d == delta && *count < u32::MAX => *count += 1,
            _ => self.deltas.push((1, delta)),
        }
    }

    /// Writes `stts`, `stss` (left out when every sample is a sync sample), `stsz`, `stsc` and
    /// `stco`, or `co64` when an offset does not fit 32 bits. For an empty table (the init
    /// segment of a fragmented MP4) these are the empty tables that format asks for.
    pub fn write_tables(&self, b: &mut BoxBuf) -> Result<(), Mp4Error> {
        b.write_full_box(*b"stts", 0, 0, |b| {
            b.u32(self.deltas.len() as u32);
            for &(count, delta) in &self.deltas {
                b.u32(count).u32(delta);
            }
            Ok(())
        })?;
        if self.sync.len() != self.sizes.len() {
            b.write_full_box(*b"stss", 0, 0, |b| {
                b.u32(self.sync.len() as u32);
                for &n in &self.sync {
                    b.u32(n);
                }
                Ok(())
            })?;
        }
        b.write_full_box(*b"stsz", 0, 0, |b| {
            b.u32(0).u32(self.sizes.len() as u32);
            for &s in &self.sizes {
                b.u32(s);
            }
            Ok(())
        })?;
        b.write_full_box(*b"stsc", 0, 0, |b| {
            let mut runs = self.chunk_runs.clone();
            let open = (self.open_chunk_samples, self.open_description);
            if !self.chunk_offsets.is_empty() && runs.last().map(|&(_, n, d)| (n, d)) != Some(open) {
                runs.push((self.chunk_offsets.len() as u32, open.0, open.1));
            }
            b.u32(runs.len() as u32);
            for (first_chunk, samples_per_chunk, description) in runs {
                b.u32(first_chunk).u32(samples_per_chunk).u32(description);
            }
            Ok(())
        })?;
        let max = self.chunk_offsets.iter().copied().max().unwrap_or(0);
        if max > u64::from(u32::MAX) {
            b.write_full_box(*b"co64", 0, 0, |b| {
                b.u32(self.chunk_offsets.len() as u32);
                for &o in &self.chunk_offsets {
                    b.u64(o);
                }
                Ok(())
            })
        } else {
            b.write_full_box(*b"stco", 0, 0, |b| {
                b.u32(self.chunk_offsets.len() as u32);
                for &o in &self.chunk_offsets {
                    b.u32(o as u32);
                }
                Ok(())
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32s(bytes: &[u8]) -> Vec<u32> {
        bytes.chunks(4).map(|c| u32::from_be_bytes(c.try_into().unwrap())).collect()
    }

    /// Splits written tables into (type, body after version/flags as u32 words).
    fn tables(t: &SampleTable) -> Vec<(String, Vec<u8>)> {
        let mut b = BoxBuf::new();
        t.write_tables(&mut b).unwrap();
        let bytes = b.into_bytes();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < bytes.len() {
            let size = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
            let kind = String::from_utf8(bytes[pos + 4..pos + 8].to_vec()).unwrap();
            out.push((kind, bytes[pos + 12..pos + size].to_vec()));
            pos += size;
        }
        out
    }

    #[test]
    fn empty_table_writes_empty_boxes_without_stss() {
        let t = tables(&SampleTable::new());
        let kinds: Vec<_> = t.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["stts", "stsz", "stsc", "stco"]);
        assert_eq!(u32s(&t[0].1), [0]);
        assert_eq!(u32s(&t[1].1), [0, 0]);
    }

    #[test]
    fn runs_chunks_and_sync_samples() {
        let mut t = SampleTable::new();
        let mut offset = 100;
        // Two GOPs of 3 samples, contiguous; then one GOP of 3 after a hole in the file.
        for i in 0..9u32 {
            if i == 6 {
                offset += 50;
            }
            t.add_sample(offset, 10 + i, i % 3 == 0).unwrap();
            offset += u64::from(10 + i);
            if i > 0 {
                t.add_duration(if i == 5 { 7000 } else { 3600 });
            }
        }
        t.add_duration(3600);
        assert_eq!(t.len(), 9);
        assert_eq!(t.sync_count(), 3);
        assert_eq!(t.duration(), 8 * 3600 + 7000);
        let got = tables(&t);
        let kinds: Vec<_> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds, ["stts", "stss", "stsz", "stsc", "stco"]);
        assert_eq!(u32s(&got[0].1), [3, 4, 3600, 1, 7000, 4, 3600]);
        assert_eq!(u32s(&got[1].1), [3, 1, 4, 7]);
        assert_eq!(u32s(&got[2].1), [0, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]);
        // Three chunks of three samples: one run.
        assert_eq!(u32s(&got[3].1), [1, 1, 3, 1]);
        assert_eq!(u32s(&got[4].1), [3, 100, 133, 225]);
    }

    #[test]
    fn long_gops_are_split_into_bounded_chunks() {
        let mut t = SampleTable::new();
        for i in 0..(MAX_CHUNK_SAMPLES + 5) {
            t.add_sample(u64::from(i), 1, i == 0).unwrap();
        }
        let got = tables(&t);
        assert_eq!(u32s(&got[3].1), [2, 1, MAX_CHUNK_SAMPLES, 1, 2, 5, 1]);
        assert_eq!(u32s(&got[4].1), [2, 0, MAX_CHUNK_SAMPLES]);
    }

    #[test]
    fn a_new_sample_description_starts_a_chunk_and_a_run() {
        let mut t = SampleTable::new();
        for i in 0..4u64 {
            t.add_sample(100 + i, 1, i == 0).unwrap();
        }
        t.set_description(2);
        for i in 4..8u64 {
            t.add_sample(100 + i, 1, false).unwrap();
        }
        let got = tables(&t);
        assert_eq!(u32s(&got[3].1), [2, 1, 4, 1, 2, 4, 2]);
        assert_eq!(u32s(&got[4].1), [2, 100, 104]);
    }

    #[test]
    fn offsets_past_4_gib_use_co64() {
        let mut t = SampleTable::new();
        t.add_sample(48, 1000, true).unwrap();
        t.add_sample(5 << 30, 1000, true).unwrap();
        let got = tables(&t);
        let (kind, body) = got.last().unwrap();
        assert_eq!(kind, "co64");
        assert_eq!(u32s(body), [2, 0, 48, 1, 1 << 30]);
    }
}

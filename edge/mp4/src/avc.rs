//! H.264 in MP4 ("AVC file format", ISO/IEC 14496-15): the decoder configuration record
//! (`avcC`) and length-prefixed NAL units (AVCC framing).

use crate::Mp4Error;

/// NAL unit type of a sequence parameter set.
pub const NAL_SPS: u8 = 7;
/// NAL unit type of a picture parameter set.
pub const NAL_PPS: u8 = 8;

/// A checked AVCDecoderConfigurationRecord, as found in codec `extra_data`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvcConfig {
    raw: Vec<u8>,
    nal_length_size: u8,
    sps: Vec<Vec<u8>>,
    pps: Vec<Vec<u8>>,
}

/// Reads the record byte by byte, failing with a reason instead of panicking.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Result<u8, Mp4Error> {
        let v = *self.data.get(self.pos).ok_or(Mp4Error::InvalidAvcC("record is truncated"))?;
        self.pos += 1;
        Ok(v)
    }

    fn u16(&mut self) -> Result<u16, Mp4Error> {
        Ok(u16::from(self.u8()?) << 8 | u16::from(self.u8()?))
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], Mp4Error> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.data.len())
            .ok_or(Mp4Error::InvalidAvcC("parameter set runs past the end"))?;
        let v = &self.data[self.pos..end];
        self.pos = end;
        Ok(v)
    }

    /// `count` parameter sets, each a 16-bit length and a NAL unit of type `nal_type`.
    fn parameter_sets(&mut self, count: u8, nal_type: u8, what: &'static str) -> Result<Vec<Vec<u8>>, Mp4Error> {
        if count == 0 {
            return Err(Mp4Error::InvalidAvcC(what));
        }
        let mut sets = Vec::with_capacity(usize::from(count));
        for _ in 0..count {
            let len = usize::from(self.u16()?);
            let nal = self.bytes(len)?;
            match nal.first() {
                Some(&h) if h & 0x1f == nal_type && h & 0x80 == 0 => {}
                Some(_) => return Err(Mp4Error::InvalidAvcC("parameter set of the wrong type")),
                None => return Err(Mp4Error::InvalidAvcC("empty parameter set")),
            }
            sets.push(nal.to_vec());
        }
        Ok(sets)
    }
}

impl AvcConfig {
    /// Checks an AVCDecoderConfigurationRecord: version 1, a NAL length size of 1, 2 or 4
    /// bytes, at least one SPS and one PPS of the right NAL types, nothing running past the
    /// end. Bytes after the PPS list (the High-profile extension) are kept as they are.
    pub fn parse(record: &[u8]) -> Result<Self, Mp4Error> {
        let mut r = Reader { data: record, pos: 0 };
        if r.u8()? != 1 {
            return Err(Mp4Error::InvalidAvcC("configurationVersion is not 1"));
        }
        let _profile = r.u8()?;
        let _compatibility = r.u8()?;
        let _level = r.u8()?;
        let nal_length_size = (r.u8()? & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(Mp4Error::InvalidAvcC("NAL length size of 3 bytes is not allowed"));
        }
        let sps_count = r.u8()? & 0x1f;
        let sps = r.parameter_sets(sps_count, NAL_SPS, "no SPS")?;
        if sps.iter().any(|s| s.len() < 4) {
            return Err(Mp4Error::InvalidAvcC("SPS is too short"));
        }
        let pps_count = r.u8()?;
        let pps = r.parameter_sets(pps_count, NAL_PPS, "no PPS")?;
        Ok(Self { raw: record.to_vec(), nal_length_size, sps, pps })
    }

    /// The record exactly as given (the body of the `avcC` box).
    pub fn record(&self) -> &[u8] {
        &self.raw
    }

    /// Bytes in front of each NAL unit of a sample: 1, 2 or 4.
    pub fn nal_length_size(&self) -> u8 {
        self.nal_length_size
    }

    /// The sequence parameter sets (NAL units without length prefix).
    pub fn sps(&self) -> &[Vec<u8>] {
        &self.sps
    }

    /// The picture parameter sets (NAL units without length prefix).
    pub fn pps(&self) -> &[Vec<u8>] {
        &self.pps
    }

    /// RFC 6381 codec string, e.g. `avc1.4d401e` (what MSE's `addSourceBuffer` wants).
    pub fn codec_string(&self) -> String {
        format!("avc1.{:02x}{:02x}{:02x}", self.raw[1], self.raw[2], self.raw[3])
    }

    /// Checks that `data` is a sequence of length-prefixed NAL units that exactly fills it, and
    /// that every in-band SPS or PPS is one of this record's: a different one means the codec
    /// parameters changed and this record no longer describes the stream.
    pub fn check_sample(&self, data: &[u8]) -> Result<(), SampleProblem> {
        if data.is_empty() {
            return Err(SampleProblem::Malformed("no NAL units"));
        }
        for nal in NalUnits::new(data, self.nal_length_size) {
            let nal = nal.map_err(SampleProblem::Malformed)?;
            let same_as = |sets: &[Vec<u8>]| sets.iter().any(|s| s.as_slice() == nal);
            match nal[0] & 0x1f {
                NAL_SPS if !same_as(&self.sps) => {
                    return Err(SampleProblem::ParametersChanged("in-band SPS differs from the avcC record"));
                }
                NAL_PPS if !same_as(&self.pps) => {
                    return Err(SampleProblem::ParametersChanged("in-band PPS differs from the avcC record"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Why [`AvcConfig::check_sample`] refused a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleProblem {
    /// Not well-formed AVCC data.
    Malformed(&'static str),
    /// Well-formed, but carries parameter sets this record does not have.
    ParametersChanged(&'static str),
}

/// Iterator over the NAL units of AVCC data (each non-empty, without its length prefix).
/// Yields an error once, then stops, when the framing is broken.
#[derive(Debug, Clone)]
pub struct NalUnits<'a> {
    rest: &'a [u8],
    length_size: usize,
}

impl<'a> NalUnits<'a> {
    /// NAL units of `data`, each prefixed with a big-endian length of `length_size` bytes.
    pub fn new(data: &'a [u8], length_size: u8) -> Self {
        Self { rest: data, length_size: usize::from(length_size) }
    }
}

impl<'a> Iterator for NalUnits<'a> {
    type Item = Result<&'a [u8], &'static str>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let fail = |this: &mut Self, why| {
            this.rest = &[];
            Some(Err(why))
        };
        if self.length_size == 0 || self.length_size > 8 {
            return fail(self, "unsupported NAL length size");
        }
        let Some((prefix, after)) = self.rest.split_at_checked(self.length_size) else {
            return fail(self, "truncated NAL length prefix");
        };
        let len = prefix.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        if len == 0 {
            return fail(self, "zero-length NAL unit");
        }
        match usize::try_from(len).ok().and_then(|l| after.split_at_checked(l)) {
            Some((nal, rest)) => {
                self.rest = rest;
                Some(Ok(nal))
            }
            None => fail(self, "NAL unit runs past the end of the sample"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const SPS: &[u8] = &[0x67, 0x4d, 0x40, 0x1e, 0xe8, 0x80];
    pub(crate) const PPS: &[u8] = &[0x68, 0xee, 0x3c, 0x80];

    /// A minimal valid record around `SPS` and `PPS`.
    pub(crate) fn record() -> Vec<u8> {
        let mut r = vec![1, 0x4d, 0x40, 0x1e, 0xff, 0xe1];
        r.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        r.extend_from_slice(SPS);
        r.push(1);
        r.extend_from_slice(&(PPS.len() as u16).to_be_bytes());
        r.extend_from_slice(PPS);
        r
    }

    pub(crate) fn avcc(nals: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for n in nals {
            out.extend_from_slice(&(n.len() as u32).to_be_bytes());
            out.extend_from_slice(n);
        }
        out
    }

    #[test]
    fn parses_a_valid_record() {
        let c = AvcConfig::parse(&record()).unwrap();
        assert_eq!(c.nal_length_size(), 4);
        assert_eq!(c.sps(), &[SPS.to_vec()]);
        assert_eq!(c.pps(), &[PPS.to_vec()]);
        assert_eq!(c.codec_string(), "avc1.4d401e");
        assert_eq!(c.record(), record().as_slice());
    }

    #[test]
    fn keeps_high_profile_extension_bytes() {
        let mut r = record();
        r.extend_from_slice(&[0xfd, 0xf8, 0xf8, 0x00]);
        assert_eq!(AvcConfig::parse(&r).unwrap().record(), r.as_slice());
    }

    #[test]
    fn every_truncation_is_an_error() {
        let r = record();
        for len in 0..r.len() {
            assert!(matches!(AvcConfig::parse(&r[..len]), Err(Mp4Error::InvalidAvcC(_))), "truncated at {len}");
        }
    }

    #[test]
    fn rejects_bad_records() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            (
                {
                    let mut r = record();
                    r[0] = 0;
                    r
                },
                "configurationVersion",
            ),
            (
                {
                    let mut r = record();
                    r[4] = 0xfe;
                    r
                },
                "3 bytes",
            ),
            (
                {
                    let mut r = record();
                    r[5] = 0xe0;
                    r
                },
                "no SPS",
            ),
            (
                {
                    let mut r = record();
                    r[8] = 0x68;
                    r
                },
                "wrong type",
            ),
            (
                {
                    let mut r = record();
                    let n = 8 + SPS.len();
                    r[n] = 0;
                    r.truncate(n + 1);
                    r
                },
                "no PPS",
            ),
            (vec![1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, 0], "empty parameter set"),
            (vec![1, 0x4d, 0x40, 0x1e, 0xff, 0xe1, 0, 2, 0x67, 0x4d, 1, 0, 1, 0x68], "too short"),
            // An Annex-B stream is not a record.
            (vec![0, 0, 0, 1, 0x67, 0x4d, 0x40, 0x1e], "configurationVersion"),
        ];
        for (bytes, want) in cases {
            let err = AvcConfig::parse(&bytes).unwrap_err().to_string();
            assert!(err.contains(want), "{bytes:02x?}: {err} should mention {want}");
        }
    }

    #[test]
    fn nal_units_split_length_prefixed_data() {
        let data = avcc(&[&[0x65, 1, 2], &[0x06]]);
        let nals: Vec<_> = NalUnits::new(&data, 4).collect();
        assert_eq!(nals, vec![Ok(&[0x65u8, 1, 2][..]), Ok(&[0x06u8][..])]);
        let two = [0, 2, 0x41, 9, 0, 1, 0x41];
        assert_eq!(NalUnits::new(&two, 2).count(), 2);
    }

    #[test]
    fn nal_units_report_broken_framing_once() {
        for (data, why) in [
            (vec![0, 0, 0], "truncated"),
            (vec![0, 0, 0, 0], "zero-length"),
            (vec![0, 0, 0, 5, 1, 2], "past the end"),
            (vec![0xff, 0xff, 0xff, 0xff, 1], "past the end"),
        ] {
            let got: Vec<_> = NalUnits::new(&data, 4).collect();
            assert_eq!(got.len(), 1, "{data:?}");
            assert!(got[0].unwrap_err().contains(why), "{data:?}: {got:?}");
        }
    }

    #[test]
    fn check_sample_accepts_repeated_parameter_sets_and_rejects_new_ones() {
        let c = AvcConfig::parse(&record()).unwrap();
        assert_eq!(c.check_sample(&avcc(&[SPS, PPS, &[0x65, 0x88]])), Ok(()));
        assert_eq!(c.check_sample(&avcc(&[&[0x41, 0x9a]])), Ok(()));
        let other_sps = [0x67, 0x64, 0x00, 0x28, 0xac];
        assert!(matches!(
            c.check_sample(&avcc(&[&other_sps, PPS, &[0x65, 0x88]])),
            Err(SampleProblem::ParametersChanged(_))
        ));
        assert!(matches!(
            c.check_sample(&avcc(&[&[0x68, 0xce], &[0x65, 0x88]])),
            Err(SampleProblem::ParametersChanged(_))
        ));
        assert_eq!(c.check_sample(&[]), Err(SampleProblem::Malformed("no NAL units")));
        // Annex-B is not AVCC: `00 00 00 01` reads as a 1-byte NAL, then `00 00 01 41` as a
        // length far past the end.
        assert!(matches!(c.check_sample(&[0, 0, 0, 1, 0x65, 0, 0, 1, 0x41, 0x9a]), Err(SampleProblem::Malformed(_))));
    }
}

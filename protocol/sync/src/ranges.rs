//! Interval arithmetic over sequence-number ranges (`u64`) and time ranges (`i64` microseconds).
//!
//! A [`RangeSet`] is a normalized set of half-open ranges `start..end`: sorted, non-empty,
//! neither overlapping nor touching. Every operation keeps it so; the set operations are linear
//! merges.

use std::ops::Range;

use serde::{Deserialize, Serialize};

/// A set of values stored as sorted, disjoint, non-adjacent half-open ranges.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<Range<T>>", into = "Vec<Range<T>>")]
pub struct RangeSet<T: Copy + Ord> {
    ranges: Vec<Range<T>>,
}

impl<T: Copy + Ord> Default for RangeSet<T> {
    fn default() -> Self {
        RangeSet { ranges: Vec::new() }
    }
}

impl<T: Copy + Ord> From<Vec<Range<T>>> for RangeSet<T> {
    fn from(ranges: Vec<Range<T>>) -> Self {
        RangeSet::from_ranges(ranges)
    }
}

impl<T: Copy + Ord> From<RangeSet<T>> for Vec<Range<T>> {
    fn from(set: RangeSet<T>) -> Self {
        set.ranges
    }
}

impl<T: Copy + Ord> From<Range<T>> for RangeSet<T> {
    fn from(range: Range<T>) -> Self {
        RangeSet::from_ranges([range])
    }
}

impl<T: Copy + Ord> FromIterator<Range<T>> for RangeSet<T> {
    fn from_iter<I: IntoIterator<Item = Range<T>>>(iter: I) -> Self {
        RangeSet::from_ranges(iter)
    }
}

impl<T: Copy + Ord> RangeSet<T> {
    /// The empty set.
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// The union of `ranges`, in any order, overlapping or empty.
    pub fn from_ranges(ranges: impl IntoIterator<Item = Range<T>>) -> Self {
        let mut v: Vec<Range<T>> = ranges.into_iter().filter(|r| r.start < r.end).collect();
        v.sort_by_key(|r| r.start);
        let mut out: Vec<Range<T>> = Vec::with_capacity(v.len());
        for r in v {
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        RangeSet { ranges: out }
    }

    /// True when the set holds nothing.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The ranges, sorted.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Range<T>> + ExactSizeIterator + '_ {
        self.ranges.iter().cloned()
    }

    /// The ranges as a slice, sorted.
    pub fn as_slice(&self) -> &[Range<T>] {
        &self.ranges
    }

    /// The smallest value in the set.
    pub fn min(&self) -> Option<T> {
        self.ranges.first().map(|r| r.start)
    }

    /// The end (exclusive) of the set's last range.
    pub fn end(&self) -> Option<T> {
        self.ranges.last().map(|r| r.end)
    }

    /// True when `value` is in the set.
    pub fn contains(&self, value: T) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= value);
        self.ranges.get(i).is_some_and(|r| r.start <= value)
    }

    /// True when all of `range` is in the set (an empty range always is).
    pub fn contains_range(&self, range: &Range<T>) -> bool {
        if range.start >= range.end {
            return true;
        }
        let i = self.ranges.partition_point(|r| r.end <= range.start);
        self.ranges.get(i).is_some_and(|r| r.start <= range.start && range.end <= r.end)
    }

    /// True when the set and `range` share a value.
    pub fn intersects_range(&self, range: &Range<T>) -> bool {
        if range.start >= range.end {
            return false;
        }
        let i = self.ranges.partition_point(|r| r.end <= range.start);
        self.ranges.get(i).is_some_and(|r| r.start < range.end)
    }

    /// Adds `range`.
    pub fn insert(&mut self, range: Range<T>) {
        if range.start >= range.end {
            return;
        }
        // The ranges that touch or overlap `range` are a contiguous run [lo, hi).
        let lo = self.ranges.partition_point(|r| r.end < range.start);
        let hi = self.ranges.partition_point(|r| r.start <= range.end);
        if lo == hi {
            self.ranges.insert(lo, range);
            return;
        }
        let start = self.ranges[lo].start.min(range.start);
        let end = self.ranges[hi - 1].end.max(range.end);
        self.ranges.splice(lo..hi, [start..end]);
    }

    /// Removes `range`.
    pub fn remove(&mut self, range: Range<T>) {
        if range.start >= range.end {
            return;
        }
        let lo = self.ranges.partition_point(|r| r.end <= range.start);
        let hi = self.ranges.partition_point(|r| r.start < range.end);
        if lo >= hi {
            return;
        }
        let mut keep = Vec::with_capacity(2);
        if self.ranges[lo].start < range.start {
            keep.push(self.ranges[lo].start..range.start);
        }
        if range.end < self.ranges[hi - 1].end {
            keep.push(range.end..self.ranges[hi - 1].end);
        }
        self.ranges.splice(lo..hi, keep);
    }

    /// Values in `self` or `other`.
    pub fn union(&self, other: &Self) -> Self {
        let mut out: Vec<Range<T>> = Vec::with_capacity(self.ranges.len() + other.ranges.len());
        let (mut a, mut b) = (self.ranges.iter().peekable(), other.ranges.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => {
                    if x.start <= y.start {
                        a.next()
                    } else {
                        b.next()
                    }
                }
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let r = next.expect("peeked").clone();
            match out.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => out.push(r),
            }
        }
        RangeSet { ranges: out }
    }

    /// Values in both `self` and `other`.
    pub fn intersect(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let (mut i, mut j) = (0, 0);
        while i < self.ranges.len() && j < other.ranges.len() {
            let (x, y) = (&self.ranges[i], &other.ranges[j]);
            let start = x.start.max(y.start);
            let end = x.end.min(y.end);
            if start < end {
                out.push(start..end);
            }
            if x.end <= y.end {
                i += 1;
            } else {
                j += 1;
            }
        }
        RangeSet { ranges: out }
    }

    /// Values in `self` but not in `other`.
    pub fn subtract(&self, other: &Self) -> Self {
        let mut out = Vec::new();
        let mut j = 0;
        for x in &self.ranges {
            let mut start = x.start;
            while j < other.ranges.len() && other.ranges[j].end <= start {
                j += 1;
            }
            let mut k = j;
            while start < x.end {
                match other.ranges.get(k) {
                    Some(y) if y.start < x.end => {
                        if y.start > start {
                            out.push(start..y.start);
                        }
                        start = start.max(y.end);
                        k += 1;
                    }
                    _ => {
                        out.push(start..x.end);
                        break;
                    }
                }
            }
        }
        RangeSet { ranges: out }
    }

    /// Values of the set within `range`.
    pub fn clip(&self, range: Range<T>) -> Self {
        self.intersect(&RangeSet::from(range))
    }
}

impl RangeSet<u64> {
    /// How many values the set holds.
    pub fn count(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }
}

impl RangeSet<i64> {
    /// The total length of the ranges (saturating).
    pub fn total(&self) -> u64 {
        self.ranges.iter().fold(0u64, |acc, r| acc.saturating_add(r.end.abs_diff(r.start)))
    }
}

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // lists of one range are what these tests mean
mod tests {
    use super::*;

    /// xorshift64*: a tiny deterministic generator.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    const UNIVERSE: i64 = 96;

    /// A random set in `-UNIVERSE/2..UNIVERSE/2` built by inserts and removes, with its model.
    fn random_set(rng: &mut Rng) -> (RangeSet<i64>, [bool; UNIVERSE as usize]) {
        let mut set = RangeSet::new();
        let mut model = [false; UNIVERSE as usize];
        for _ in 0..rng.below(8) {
            let a = rng.below(UNIVERSE as u64) as i64 - UNIVERSE / 2;
            let len = rng.below(20) as i64;
            let b = (a + len).min(UNIVERSE / 2);
            let add = rng.below(3) != 0;
            if add {
                set.insert(a..b);
            } else {
                set.remove(a..b);
            }
            for v in a..b {
                model[(v + UNIVERSE / 2) as usize] = add;
            }
        }
        (set, model)
    }

    fn check_normal<T: Copy + Ord + std::fmt::Debug>(set: &RangeSet<T>) {
        for r in set.as_slice() {
            assert!(r.start < r.end, "empty range in {set:?}");
        }
        for w in set.as_slice().windows(2) {
            assert!(w[0].end < w[1].start, "not normalized: {set:?}");
        }
    }

    fn check_model(set: &RangeSet<i64>, model: &[bool; UNIVERSE as usize]) {
        check_normal(set);
        for (i, &m) in model.iter().enumerate() {
            let v = i as i64 - UNIVERSE / 2;
            assert_eq!(set.contains(v), m, "value {v} in {set:?}");
        }
        let count = model.iter().filter(|&&m| m).count() as u64;
        assert_eq!(set.total(), count);
        // Nothing outside the universe.
        assert!(!set.contains(-UNIVERSE / 2 - 1) && !set.contains(UNIVERSE / 2));
    }

    #[test]
    fn operations_match_a_bitset_model() {
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for _ in 0..3000 {
            let (a, ma) = random_set(&mut rng);
            let (b, mb) = random_set(&mut rng);
            check_model(&a, &ma);
            check_model(&b, &mb);
            let pick = |f: &dyn Fn(bool, bool) -> bool| {
                let mut m = [false; UNIVERSE as usize];
                for i in 0..m.len() {
                    m[i] = f(ma[i], mb[i]);
                }
                m
            };
            check_model(&a.union(&b), &pick(&|x, y| x || y));
            check_model(&a.intersect(&b), &pick(&|x, y| x && y));
            check_model(&a.subtract(&b), &pick(&|x, y| x && !y));
            check_model(&b.subtract(&a), &pick(&|x, y| y && !x));
            // Algebraic identities.
            assert_eq!(a.union(&b), b.union(&a));
            assert_eq!(a.intersect(&b), b.intersect(&a));
            assert_eq!(a.subtract(&b).union(&a.intersect(&b)), a);
            assert!(a.subtract(&b).intersect(&b).is_empty());
            // Range queries agree with the model.
            let s = rng.below(UNIVERSE as u64) as i64 - UNIVERSE / 2;
            let e = (s + rng.below(12) as i64).min(UNIVERSE / 2);
            let idx = |v: i64| (v + UNIVERSE / 2) as usize;
            assert_eq!(a.contains_range(&(s..e)), (s..e).all(|v| ma[idx(v)]));
            assert_eq!(a.intersects_range(&(s..e)), (s..e).any(|v| ma[idx(v)]));
            let clipped = a.clip(s..e);
            check_normal(&clipped);
            for v in -UNIVERSE / 2..UNIVERSE / 2 {
                assert_eq!(clipped.contains(v), ma[idx(v)] && (s..e).contains(&v));
            }
            // from_ranges of the pieces rebuilds the same set, in any order.
            let mut pieces: Vec<_> = a.iter().chain(b.iter()).collect();
            pieces.reverse();
            assert_eq!(RangeSet::from_ranges(pieces), a.union(&b));
        }
    }

    #[test]
    fn u64_edges_and_serde() {
        let mut s: RangeSet<u64> = RangeSet::new();
        s.insert(0..1);
        s.insert(u64::MAX - 1..u64::MAX);
        s.insert(5..5); // empty: ignored
        assert_eq!(s.count(), 2);
        assert!(s.contains(0) && s.contains(u64::MAX - 1) && !s.contains(1));
        s.insert(1..u64::MAX - 1);
        assert_eq!(s.as_slice(), &[0..u64::MAX]);
        s.remove(10..20);
        assert_eq!(s.as_slice(), &[0..10, 20..u64::MAX]);
        assert_eq!(s.min(), Some(0));
        assert_eq!(s.end(), Some(u64::MAX));
        let bytes = postcard::to_allocvec(&s).unwrap();
        assert_eq!(postcard::from_bytes::<RangeSet<u64>>(&bytes).unwrap(), s);
        // Deserializing unnormalized ranges normalizes them.
        let raw: Vec<std::ops::Range<u64>> = vec![9..12, 1..3, 2..5, 7..7];
        let bytes = postcard::to_allocvec(&raw).unwrap();
        assert_eq!(postcard::from_bytes::<RangeSet<u64>>(&bytes).unwrap().as_slice(), &[1..5, 9..12]);
    }

    #[test]
    fn touching_ranges_merge() {
        let s = RangeSet::from_ranges([0u64..5, 5..9, 12..13]);
        assert_eq!(s.as_slice(), &[0..9, 12..13]);
        let mut t = s.clone();
        t.insert(9..12);
        assert_eq!(t.as_slice(), &[0..13]);
        assert_eq!(s.subtract(&RangeSet::from(0..13)), RangeSet::new());
    }
}

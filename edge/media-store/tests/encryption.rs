//! Encryption at rest: payloads are unreadable without the key, everything else works
//! without it, and the key gives back exactly what was recorded.

mod common;

use common::*;
use media_store::read::read_range;
use media_store::verify::verify;
use media_store::{MediaKey, Record, Store, StoreOptions};

fn encrypted_opts(key: &MediaKey) -> StoreOptions {
    StoreOptions { encryption_key: Some(key.clone()), ..opts(20_000) }
}

fn record_some(dir: &std::path::Path, key: &MediaKey) {
    let (mut s, _) = Store::open(dir, encrypted_opts(key)).unwrap();
    s.append(&params("front")).unwrap();
    for i in 0..100 {
        s.append(&frame("front", i)).unwrap();
    }
}

#[test]
fn payloads_are_encrypted_and_come_back_with_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = MediaKey::new(&[42; 32]);
    record_some(dir.path(), &key);
    // No segment holds a frame's plaintext (a run of its repeated byte).
    for entry in walk(&dir.path().join("logs")) {
        let bytes = std::fs::read(&entry).unwrap();
        for i in [3u32, 50, 99] {
            let Record::Frame(f) = frame("front", i) else { unreachable!() };
            assert!(!bytes.windows(64).any(|w| w == &f.data[..64]), "plaintext of frame {i} in {}", entry.display());
        }
    }
    // Verify, reindex and the catalog need no key.
    let v = verify(dir.path(), None).unwrap();
    assert!(v.ok(), "{:?}", v.errors);
    assert_eq!(v.frames, 100);
    // Reading needs it, and gives back the exact frames.
    let err = read_range(dir.path(), "front", T0, T0 + 10_000_000, None).err().unwrap();
    assert!(err.to_string().contains("is encrypted"), "{err}");
    let got: Vec<Record> =
        read_range(dir.path(), "front", T0, T0 + 10_000_000, Some(key.clone())).unwrap().map(Result::unwrap).collect();
    let frames: Vec<Record> = got.into_iter().filter(|r| matches!(r, Record::Frame(_))).collect();
    assert_eq!(frames.len(), 100);
    for (i, f) in frames.iter().enumerate() {
        let (Record::Frame(a), Record::Frame(b)) = (f, frame("front", i as u32)) else { unreachable!() };
        assert_eq!((a.data.len(), a.wall_clock_us, a.pts), (b.data.len(), b.wall_clock_us, b.pts), "frame {i}");
        assert!(a.data == b.data, "frame {i} differs after decryption: {:?}", &a.data[..8]);
    }
    // A wrong key is an error, not garbage video.
    let wrong = MediaKey::new(&[7; 32]);
    let err = match read_range(dir.path(), "front", T0, T0 + 10_000_000, Some(wrong)) {
        Err(e) => e,
        Ok(mut r) => r.find_map(Result::err).expect("a wrong key fails"),
    };
    assert!(err.to_string().contains("does not decrypt"), "{err}");
}

#[test]
fn reopening_needs_the_key_and_continues_the_encrypted_tail() {
    let dir = tempfile::tempdir().unwrap();
    let key = MediaKey::new(&[1; 32]);
    record_some(dir.path(), &key);
    let err = Store::open(dir.path(), opts(20_000)).err().unwrap();
    assert!(err.to_string().contains("is encrypted"), "{err}");
    let wrong = MediaKey::new(&[2; 32]);
    assert!(Store::open(dir.path(), encrypted_opts(&wrong)).is_err(), "a wrong key cannot continue the tail");
    {
        let (mut s, _) = Store::open(dir.path(), encrypted_opts(&key)).unwrap();
        for i in 100..150 {
            s.append(&frame("front", i)).unwrap();
        }
    }
    let got: Vec<Record> =
        read_range(dir.path(), "front", T0, T0 + 10_000_000, Some(key)).unwrap().map(Result::unwrap).collect();
    let n = got.iter().filter(|r| matches!(r, Record::Frame(_))).count();
    assert_eq!(n, 150);
    assert!(verify(dir.path(), None).unwrap().ok());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() { out.extend(walk(&p)) } else { out.push(p) }
    }
    out
}

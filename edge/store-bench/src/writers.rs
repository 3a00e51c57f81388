//! The three writers compared, behind one trait: Convoy's media store, the physical limit
//! (plain appends to one file per camera) and the naive design (one SQLite row per frame).
//! All three make their data durable when told to, once per simulated second.

use std::fs::File;
use std::io::{IoSlice, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use media_store::{MediaKind, Record, Store, StoreOptions, StoredFrame, StoredParameters};

use crate::workload::{CLOCK_RATE, Frame};

/// A way of recording the workload.
pub trait MediaWriter {
    /// Records one frame (not yet durable).
    fn frame(&mut self, frame: &Frame) -> Result<()>;
    /// Makes every frame recorded so far durable.
    fn sync(&mut self) -> Result<()>;
    /// Closes the writer; returns the bytes its files hold (what a reader could get back).
    fn close(self: Box<Self>) -> Result<u64>;
    /// Applies retention, where the writer has any (as a unit does every 30 s).
    fn groom(&mut self) -> Result<()> {
        Ok(())
    }
}

/// How Convoy's store is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConvoyOptions {
    /// Encrypt media at rest (a fixed bench key).
    pub encrypt: bool,
    /// `sync_whole_filesystem`: one `syncfs` per group commit.
    pub syncfs: bool,
    /// A retention size budget in bytes: the store runs full, as a unit does after its first
    /// days, and new segments reuse retired segments' files.
    pub budget: Option<u64>,
}

/// Which writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// `media_store::Store` with default options (64 MiB pre-allocated segments).
    Convoy,
    /// One file per camera, `write` + `fdatasync`: the physical limit.
    Raw,
    /// One SQLite row per frame, WAL, `synchronous=FULL`, a transaction per sync.
    Sqlite,
}

impl Kind {
    /// Its name in tables.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Convoy => "convoy",
            Kind::Raw => "raw",
            Kind::Sqlite => "sqlite",
        }
    }

    /// Opens a writer of this kind in `dir`; `convoy` sets up Convoy's store.
    pub fn open(self, dir: &Path, cameras: &[String], convoy: ConvoyOptions) -> Result<Box<dyn MediaWriter>> {
        Ok(match self {
            Kind::Convoy => Box::new(Convoy::open(dir, cameras, convoy)?),
            Kind::Raw => Box::new(Raw::open(dir, cameras)?),
            Kind::Sqlite => Box::new(Sqlite::open(dir, cameras)?),
        })
    }
}

/// Convoy's store: a `Parameters` record per camera, then `Frame` records; `sync` is
/// [`Store::sync`] (the recorder's group commit).
pub struct Convoy {
    store: Store,
    cameras: Vec<String>,
    parameters_seq: Vec<u64>,
    /// Reused for every frame, as `append` takes a reference.
    record: Record,
}

impl Convoy {
    /// Opens (or recovers) the store in `dir` and writes each camera's codec parameters.
    pub fn open(dir: &Path, cameras: &[String], convoy: ConvoyOptions) -> Result<Convoy> {
        let encryption_key = convoy.encrypt.then(|| media_store::MediaKey::new(&[0x5c; 32]));
        let retention = media_store::Retention {
            max_bytes: convoy.budget,
            min_free_bytes: convoy.budget.map(|_| 0),
            ..Default::default()
        };
        let options =
            StoreOptions { encryption_key, sync_whole_filesystem: convoy.syncfs, retention, ..StoreOptions::default() };
        let (mut store, _) = Store::open(dir, options)?;
        let mut parameters_seq = Vec::new();
        for camera in cameras {
            let parameters = StoredParameters {
                camera: camera.clone(),
                rfc6381_codec: "avc1.640028".into(),
                width: 1920,
                height: 1080,
                extra_data: vec![1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 24, 0x67, 0x64, 0, 0x28, 0xac, 0xd9, 0x40, 0x78],
            };
            parameters_seq.push(store.append(&Record::Parameters(parameters))?);
        }
        let record = Record::Frame(StoredFrame {
            camera: String::new(),
            stream: 0,
            parameters_seq: 0,
            kind: MediaKind::Video,
            keyframe: false,
            pts: 0,
            clock_rate: CLOCK_RATE,
            wall_clock_us: 0,
            data: Vec::new(),
        });
        Ok(Convoy { store, cameras: cameras.to_vec(), parameters_seq, record })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

impl MediaWriter for Convoy {
    fn frame(&mut self, frame: &Frame) -> Result<()> {
        let Record::Frame(f) = &mut self.record else { unreachable!("always a frame") };
        f.camera.clone_from(&self.cameras[frame.camera]);
        f.parameters_seq = self.parameters_seq[frame.camera];
        f.keyframe = frame.keyframe;
        f.pts = frame.pts;
        f.wall_clock_us = frame.wall_us;
        f.data.clear();
        f.data.extend_from_slice(frame.data);
        self.store.append(&self.record)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        Ok(self.store.sync()?)
    }

    fn groom(&mut self) -> Result<()> {
        if self.store.retention().max_bytes.is_some() {
            self.store.groom(0)?;
        }
        Ok(())
    }

    /// Drops the store without sealing its open segments (as a power cut after a sync would).
    fn close(self: Box<Self>) -> Result<u64> {
        let segments = self.store.total_bytes()?;
        let dir = self.store.dir().to_owned();
        drop(self);
        let catalog = ["catalog.db", "catalog.db-wal"].iter().map(|f| file_len(&dir.join(f))).sum::<u64>();
        Ok(segments + catalog)
    }
}

/// Plain appends: one file per camera, a 16-byte header (`len u32 | keyframe u32 | wall_us
/// i64`) before each frame, `fdatasync` of every file on `sync`.
pub struct Raw {
    files: Vec<(File, PathBuf)>,
}

impl Raw {
    /// Creates one file per camera in `dir`.
    pub fn open(dir: &Path, cameras: &[String]) -> Result<Raw> {
        let files = cameras
            .iter()
            .map(|c| {
                let path = dir.join(format!("{c}.raw"));
                Ok((File::create(&path).with_context(|| format!("create {}", path.display()))?, path))
            })
            .collect::<Result<_>>()?;
        Ok(Raw { files })
    }
}

impl MediaWriter for Raw {
    fn frame(&mut self, frame: &Frame) -> Result<()> {
        let mut header = [0u8; 16];
        header[0..4].copy_from_slice(&(frame.data.len() as u32).to_le_bytes());
        header[4..8].copy_from_slice(&u32::from(frame.keyframe).to_le_bytes());
        header[8..16].copy_from_slice(&frame.wall_us.to_le_bytes());
        let (file, path) = &mut self.files[frame.camera];
        write_all_vectored(file, &mut [IoSlice::new(&header), IoSlice::new(frame.data)])
            .with_context(|| format!("write {}", path.display()))
    }

    fn sync(&mut self) -> Result<()> {
        for (file, path) in &self.files {
            file.sync_data().with_context(|| format!("fdatasync {}", path.display()))?;
        }
        Ok(())
    }

    fn close(self: Box<Self>) -> Result<u64> {
        Ok(self.files.iter().map(|(_, path)| file_len(path)).sum())
    }
}

/// One `write(2)`/`writev(2)` per frame, looping only on short writes.
fn write_all_vectored(file: &mut File, mut bufs: &mut [IoSlice]) -> std::io::Result<()> {
    while !bufs.is_empty() {
        let n = file.write_vectored(bufs)?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// The naive design: `frame(camera, ts, keyframe, data BLOB)`, WAL, `synchronous=FULL`, a
/// transaction per `sync`.
pub struct Sqlite {
    conn: rusqlite::Connection,
    path: PathBuf,
    cameras: Vec<String>,
    in_transaction: bool,
}

const INSERT: &str = "INSERT INTO frame (camera, ts, keyframe, data) VALUES (?1, ?2, ?3, ?4)";

impl Sqlite {
    /// Creates the database `frames.db` in `dir`.
    pub fn open(dir: &Path, cameras: &[String]) -> Result<Sqlite> {
        let path = dir.join("frames.db");
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE frame (camera TEXT NOT NULL, ts INTEGER NOT NULL, keyframe INTEGER NOT NULL, data BLOB NOT NULL)",
        )?;
        Ok(Sqlite { conn, path, cameras: cameras.to_vec(), in_transaction: false })
    }
}

impl MediaWriter for Sqlite {
    fn frame(&mut self, frame: &Frame) -> Result<()> {
        if !self.in_transaction {
            self.conn.execute_batch("BEGIN")?;
            self.in_transaction = true;
        }
        self.conn.prepare_cached(INSERT)?.execute(rusqlite::params![
            self.cameras[frame.camera],
            frame.wall_us,
            frame.keyframe,
            frame.data
        ])?;
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.in_transaction {
            self.conn.execute_batch("COMMIT")?;
            self.in_transaction = false;
        }
        Ok(())
    }

    /// Closes the connection, which checkpoints the WAL into the database file.
    fn close(mut self: Box<Self>) -> Result<u64> {
        self.sync()?;
        let Sqlite { conn, path, .. } = *self;
        conn.close().map_err(|(_, e)| e)?;
        let wal = PathBuf::from(format!("{}-wal", path.display()));
        Ok(file_len(&path) + file_len(&wal))
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

//! Wire types of the sync protocol: catalog exchange, retrieval of recorded video, acknowledgements
//! and remote events between an edge unit and central.
//!
//! The protocol is pull-based: the edge announces what it holds ([`SyncFromEdge::Catalog`]) and
//! central asks for it piece by piece ([`SyncFromCentral::Fetch`]), so flow control, resume and the
//! bandwidth cap all live at central. The state machines that speak it are in the `sync-core`
//! crate; this module only defines the messages.
//!
//! Frame identity is `(camera, seq)`: `seq` is the per-camera sequence number of the edge's media
//! store (strictly increasing, never reused). Ranges of sequence numbers on the wire are
//! inclusive (`first_seq..=last_seq`, `from_seq..=to_seq`).
//!
//! Compatibility: [`SyncFromEdge`] and [`SyncFromCentral`] only ever gain variants at the end. A
//! peer sends a new variant only to a peer whose [`crate::PROTOCOL_VERSION`] (from the hello)
//! knows it; should one arrive anyway, postcard decoding returns an error (serde's "unknown
//! variant", never a panic) and the receiving glue drops that one
//! message (each message is framed, so the stream stays usable). The state machines never see
//! it; whatever it would have answered times out and is asked again.
//!
//! Central also sets camera settings on a unit ([`SyncFromCentral::Settings`], protocol version
//! 3: the latest [`SettingsPush`] revision, answered by [`SyncFromEdge::SettingsApplied`]) and
//! hears the changes the unit's technician made ([`SyncFromEdge::LocalChanges`], acknowledged by
//! [`SyncFromCentral::LocalChangesAck`]).
//!
//! Catalogs and event batches travel zstd-compressed ([`CompressedCatalog`], [`CompressedEvents`]);
//! `sync-core` compresses them and caps the decompressed size.

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// A run of one camera's frames on the edge: contiguous sequence numbers (apart from numbers
/// taken by non-frame records) without a wall-clock gap larger than the edge's threshold.
///
/// The edge may split long runs (for example every ten minutes) so that central's estimate of
/// which sequence numbers cover a time range stays tight.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    /// Sequence number of the run's first frame.
    pub first_seq: u64,
    /// Sequence number of the run's last frame (inclusive, `>= first_seq`).
    pub last_seq: u64,
    /// Wall clock of the first frame, microseconds since the Unix epoch.
    pub start_us: i64,
    /// Wall clock of the last frame, microseconds since the Unix epoch (`>= start_us`).
    pub end_us: i64,
    /// Total payload bytes of the run's frames.
    pub bytes: u64,
    /// Number of frames in the run.
    pub frames: u64,
}

/// What the edge holds of one camera.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraHoldings {
    /// The camera's id, unique within its unit.
    pub camera: String,
    /// The camera's runs, sorted by `first_seq`, not overlapping.
    pub spans: Vec<Span>,
    /// Runs retention has removed, sorted by `first_seq`, so central can tell "gone" from "never
    /// recorded" when asked for old video. The edge may merge old entries or drop the oldest to
    /// bound the catalog's size.
    pub removed: Vec<Span>,
}

/// The edge's summary of its recorded video, sent zstd-compressed as [`CompressedCatalog`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatalogSummary {
    /// The edge's wall clock when the summary was made, microseconds since the Unix epoch. Every
    /// frame recorded before this time (less a few seconds for frames still being written) is in
    /// the summary.
    pub as_of_us: i64,
    /// One entry per camera.
    pub cameras: Vec<CameraHoldings>,
}

/// A zstd-compressed postcard encoding of a [`CatalogSummary`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedCatalog {
    /// The compressed bytes.
    #[serde(with = "serde_bytes")]
    pub zstd: Vec<u8>,
}

/// A zstd-compressed postcard encoding of an [`EventBatch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedEvents {
    /// The compressed bytes.
    #[serde(with = "serde_bytes")]
    pub zstd: Vec<u8>,
}

/// One recorded frame as it travels from the edge to central.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFrame {
    /// The frame's sequence number in its camera's log.
    pub seq: u64,
    /// When the edge received the frame, microseconds since the Unix epoch.
    pub wall_clock_us: i64,
    /// True for a frame a decoder can start from.
    pub keyframe: bool,
    /// The stored record body, opaque to the sync protocol.
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// The edge's answer to a [`SyncFromCentral::Fetch`].
///
/// `frames` are *all* the frames of `camera` with `from_seq <= seq < next_seq` (or
/// `seq <= to_seq` when `next_seq` is `None`), in increasing order: sequence numbers in that
/// range without a frame hold none (they belong to other records). Central therefore learns that
/// it holds everything of that range, not just these frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The fetch this answers.
    pub fetch_id: u64,
    /// The camera, as in the fetch.
    pub camera: String,
    /// Whole frames, in increasing `seq`.
    pub frames: Vec<SyncFrame>,
    /// Where the next fetch of the range should start (the chunk stopped at `max_bytes`), or
    /// `None` when the chunk reaches `to_seq`.
    pub next_seq: Option<u64>,
    /// BLAKE3 over the frames (see `sync-core`'s `chunk_digest`), checked by central.
    pub digest: [u8; 32],
}

/// Why the edge could not answer a fetch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchFailure {
    /// Retention removed the frames of `from_seq..available_from`: they are lost.
    Gone {
        /// The first sequence number at or after `from_seq` that may still be read.
        available_from: u64,
    },
    /// The unit has no camera of that id.
    UnknownCamera,
    /// The store could not read the range (I/O error, corruption); central retries a few times.
    Unreadable {
        /// The store's error, for logs.
        detail: String,
    },
}

/// What happened, in a [`RemoteEvent`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A camera stopped delivering frames.
    CameraLost {
        /// Why, as the edge saw it.
        reason: String,
    },
    /// A camera delivers frames again.
    CameraRestored,
    /// A digital input of the I/O companion board changed.
    DigitalInput {
        /// The input's number on the board.
        input: u16,
        /// Its new level.
        active: bool,
    },
    /// Motion was detected.
    Motion,
    /// Any other event, named by the unit's configuration.
    Generic {
        /// The event's name.
        name: String,
        /// Free-form details.
        detail: String,
    },
}

/// An event that happened on the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteEvent {
    /// The unit's id for the event, strictly increasing in the order the unit records them.
    pub id: u64,
    /// The cameras it concerns (empty: the whole unit).
    pub cameras: Vec<String>,
    /// When it happened, microseconds since the Unix epoch (the unit's wall clock).
    pub time_us: i64,
    /// What happened.
    pub kind: EventKind,
}

/// A batch of events, sent zstd-compressed as [`CompressedEvents`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The events, in increasing `id`.
    pub events: Vec<RemoteEvent>,
}

/// Edge → central sync messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncFromEdge {
    /// What the unit holds; sent at connect and when it changes.
    Catalog(CompressedCatalog),
    /// The answer to a fetch.
    Chunk(Chunk),
    /// A fetch that cannot be answered.
    FetchFailed {
        /// The fetch.
        fetch_id: u64,
        /// Why.
        reason: FetchFailure,
    },
    /// Events not yet acknowledged by central.
    Events(CompressedEvents),
    /// The answer to a [`SyncFromCentral::Lock`] (protocol version 2): the lock is durable in the
    /// unit's store, or `error` says why it could not be made.
    Locked {
        /// The lock central asked for.
        lock_id: u64,
        /// `None`: locked. Otherwise the unit's reason (no such camera, store failure).
        error: Option<String>,
    },
    /// The answer to [`SyncFromCentral::Settings`] (protocol version 3): the unit applies
    /// central's settings of this revision (durably kept, in force over its own configuration).
    SettingsApplied {
        /// The revision applied.
        revision: u64,
        /// Where the technician had changed a field that central's settings now set: central's
        /// value is in force, the technician's is overridden.
        conflicts: Vec<SettingsConflict>,
    },
    /// Changes the technician made on the unit's page (protocol version 3), sent at each
    /// connection until central answers [`SyncFromCentral::LocalChangesAck`].
    LocalChanges(Vec<LocalChange>),
}

/// Camera settings central sets on a unit (protocol version 3): every field is optional, and
/// one left out keeps the unit's own value (from its configuration file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraSettings {
    /// The camera's id, or `"*"` for every camera of the unit without an entry of its own.
    pub camera: String,
    /// Central's recording options of the camera (`"remote"`, `"none"`, `"on_request"` …, as
    /// names, so an option a unit does not know is simply not acted on). Without `"remote"` the
    /// unit does not record the camera.
    pub recording: Option<Vec<String>>,
    /// Recording mode: `continuous`, `schedule`, `event` or `off`.
    pub mode: Option<String>,
    /// The unit's `[[time_profile]]` a camera in schedule mode records in.
    pub schedule: Option<String>,
    /// Pre-buffer, milliseconds.
    pub pre_buffer_ms: Option<u32>,
    /// Post-buffer, milliseconds.
    pub post_buffer_ms: Option<u32>,
    /// Motion detection on or off.
    pub motion: Option<bool>,
    /// Motion sensitivity, 1–10.
    pub motion_sensitivity: Option<u8>,
    /// Delete recordings older than this many seconds.
    pub max_age_s: Option<u64>,
}

/// Central's settings of one unit, as a whole (protocol version 3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsPush {
    /// Central's revision of the unit's settings, rising with each change.
    pub revision: u64,
    /// The fleet profile they come from, if any (for the technician's page).
    pub profile: Option<String>,
    /// When central made this revision, microseconds since the Unix epoch.
    pub set_at_us: i64,
    /// The settings, a `"*"` entry first when there is one.
    pub cameras: Vec<CameraSettings>,
}

/// A field both the technician and central changed; central's value is in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsConflict {
    /// The camera.
    pub camera: String,
    /// The field, as the central API names it (`mode`, `pre_buffer_s` …).
    pub field: String,
    /// The technician's value (JSON text).
    pub local: String,
    /// Central's value, in force (JSON text).
    pub central: String,
}

/// A change the technician made to one field of one camera on the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalChange {
    /// The unit's id for the change, increasing; central acknowledges up to it.
    pub id: u64,
    /// The camera.
    pub camera: String,
    /// The field, as the central API names it (`mode`, `pre_buffer_s` …).
    pub field: String,
    /// The new value (JSON text; `null` when removed).
    pub value: String,
    /// When, microseconds since the Unix epoch.
    pub at_us: i64,
    /// Whether central's settings set this field, so the change is not in force.
    pub overridden: bool,
}

/// An evidence lock central asks a unit to make in its store (protocol version 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceLockRequest {
    /// Central's id for the lock; the unit answers with it.
    pub lock_id: u64,
    /// The unit's camera.
    pub camera: String,
    /// Start of the locked range, microseconds since the Unix epoch.
    pub start_us: i64,
    /// End of the locked range (exclusive), microseconds since the Unix epoch.
    pub end_us: i64,
    /// Until when the unit's retention must keep the range, microseconds since the Unix epoch.
    pub expires_us: i64,
    /// Why, as the operator gave it (kept with the lock in the unit's store).
    pub reason: String,
}

/// Central → edge sync messages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncFromCentral {
    /// Asks for whole frames of `camera` from `from_seq` upward, stopping at `to_seq`
    /// (inclusive) or once `max_bytes` of payload are gathered (a single larger frame is still
    /// sent whole). Answered by one [`SyncFromEdge::Chunk`] or [`SyncFromEdge::FetchFailed`].
    Fetch {
        /// Central's id for the fetch, never reused by a central.
        fetch_id: u64,
        /// The camera.
        camera: String,
        /// The first sequence number wanted.
        from_seq: u64,
        /// The last sequence number wanted (inclusive).
        to_seq: u64,
        /// The payload budget of the answer.
        max_bytes: u32,
    },
    /// Central holds (durably, verified) every frame the unit had of `camera` up to and including
    /// `up_to_seq`, so retention may remove them.
    Stored {
        /// The camera.
        camera: String,
        /// The highest sequence number covered.
        up_to_seq: u64,
    },
    /// Central durably holds every event up to and including this id.
    EventsAck {
        /// The highest event id held.
        up_to_id: u64,
    },
    /// Evidence-lock a range in the unit's store (protocol version 2; sent again after each
    /// reconnect until the unit answers [`SyncFromEdge::Locked`]).
    Lock(EvidenceLockRequest),
    /// Central's camera settings of the unit (protocol version 3; the latest revision is sent
    /// again after each reconnect until the unit answers [`SyncFromEdge::SettingsApplied`]).
    Settings(SettingsPush),
    /// Central durably holds the technician's changes up to and including this id.
    LocalChangesAck {
        /// The highest change id held.
        up_to_id: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn round_trip_and_unknown_variant() {
        let msg = SyncFromCentral::Fetch {
            fetch_id: 7,
            camera: "front".into(),
            from_seq: 10,
            to_seq: 20,
            max_bytes: 1 << 18,
        };
        let bytes = postcard::to_allocvec(&msg).unwrap();
        assert_eq!(postcard::from_bytes::<SyncFromCentral>(&bytes).unwrap(), msg);

        // A variant from a newer peer: a clean error, not a panic.
        let newer = vec![200u8, 1, 2, 3];
        assert!(postcard::from_bytes::<SyncFromCentral>(&newer).is_err());
        assert!(postcard::from_bytes::<SyncFromEdge>(&newer).is_err());
        assert!(postcard::from_bytes::<EventKind>(&[9u8]).is_err());
        assert!(postcard::from_bytes::<FetchFailure>(&[3u8]).is_err());
    }

    #[test]
    fn chunk_round_trip() {
        let msg = SyncFromEdge::Chunk(Chunk {
            fetch_id: 1,
            camera: "rear".into(),
            frames: vec![SyncFrame { seq: 3, wall_clock_us: -5, keyframe: true, payload: vec![1, 2, 3] }],
            next_seq: Some(4),
            digest: [9; 32],
        });
        let bytes = postcard::to_allocvec(&msg).unwrap();
        assert_eq!(postcard::from_bytes::<SyncFromEdge>(&bytes).unwrap(), msg);
    }
}

/// The payload of a [`SyncFrame`] between Convoy's edge and central up to protocol version 3
/// (video only): the frame and, where it starts a chunk or is a key frame, the codec parameters
/// it needs (so that every chunk can be decoded and stored on its own). Its bytes are those of a
/// video [`RetrievedMedia`], which central decodes every payload as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetrievedFrame {
    /// The codec parameters in force for this frame, when sent with it.
    pub parameters: Option<crate::interconnect::VideoParameters>,
    /// The frame as the unit recorded it.
    pub frame: crate::interconnect::MediaFrame,
}

/// The payload of a [`SyncFrame`] from protocol version 4 on: a video frame or an audio frame,
/// with the codec parameters it needs where it starts a chunk, is a key frame or follows a
/// change of parameters.
///
/// The two video variants encode to exactly the bytes of a [`RetrievedFrame`] (postcard writes
/// an `Option` as a 0 or 1 tag, and these variants' indexes are 0 and 1), so a payload from a
/// unit of any version decodes as a `RetrievedMedia`, and a v4 unit's video payloads are what a
/// v3 central expects. [`RetrievedMedia::Audio`] (tag 2) goes only to a central whose version is
/// [`crate::AUDIO_PROTOCOL_VERSION`] or later: an older one would fail to decode it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RetrievedMedia {
    /// A video frame sent without parameters (those before it in the chunk apply).
    Video(crate::interconnect::MediaFrame),
    /// A video frame with the parameters in force for it.
    VideoWithParameters(crate::interconnect::VideoParameters, crate::interconnect::MediaFrame),
    /// An audio frame (protocol version 4).
    Audio {
        /// The audio parameters in force for it, when sent with it (always with a chunk's first
        /// audio frame and after a change).
        parameters: Option<crate::interconnect::AudioParameters>,
        /// The frame as the unit recorded it.
        frame: crate::interconnect::MediaFrame,
    },
}

impl From<RetrievedFrame> for RetrievedMedia {
    fn from(r: RetrievedFrame) -> RetrievedMedia {
        match r.parameters {
            Some(p) => RetrievedMedia::VideoWithParameters(p, r.frame),
            None => RetrievedMedia::Video(r.frame),
        }
    }
}

impl RetrievedMedia {
    /// The frame, whatever its kind.
    pub fn frame(&self) -> &crate::interconnect::MediaFrame {
        match self {
            RetrievedMedia::Video(f) | RetrievedMedia::VideoWithParameters(_, f) => f,
            RetrievedMedia::Audio { frame, .. } => frame,
        }
    }

    /// True for an audio frame.
    pub fn is_audio(&self) -> bool {
        matches!(self, RetrievedMedia::Audio { .. })
    }
}

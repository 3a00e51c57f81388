//! Property tests of the sync protocol over a simulated link (see `harness`): hundreds of seeded
//! runs with partitions, stalls, reordering, corrupted chunks, edge and central restarts,
//! grooming and link policy changes. Each run checks on every step that acknowledgements never
//! exceed what central durably holds, that no frame is stored twice, that stored frames are
//! byte-identical to the edge's and that progress never goes back; and at the end that every
//! retrieval finished, with everything the unit still has of its range stored, `Done` only when
//! nothing was lost (and then `bytes_done == bytes_total`), `Failed` only with a real loss, and
//! every remote event delivered. Cameras record audio frames between their video frames: a
//! central of protocol version 4 gets each of them exactly once like video, one of version 3
//! none (and everything else as before).
//!
//! `SYNC_SIM_SEEDS=n` runs more seeds; `SYNC_SIM_SEED=n` runs one.

mod harness;

use harness::{Outcome, Params, Sim};

fn seeds() -> Vec<u64> {
    if let Ok(one) = std::env::var("SYNC_SIM_SEED") {
        return vec![one.parse().expect("SYNC_SIM_SEED is a number")];
    }
    let n = std::env::var("SYNC_SIM_SEEDS").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    (0..n).collect()
}

#[test]
fn random_runs_keep_every_invariant() {
    let mut total = Outcome::default();
    for seed in seeds() {
        let out = Sim::new(Params::random(seed)).run();
        total.done += out.done;
        total.failed += out.failed;
        total.frames_stored += out.frames_stored;
        total.digest_mismatches += out.digest_mismatches;
        total.timeouts += out.timeouts;
        total.restarts += out.restarts;
        total.acks += out.acks;
        total.audio_stored += out.audio_stored;
        total.audio_runs += out.audio_runs;
        total.video_only_runs += out.video_only_runs;
    }
    eprintln!("{total:?}");
    // The runs exercised what they are meant to.
    if seeds().len() >= 100 {
        assert!(total.done > 100 && total.failed > 5, "{total:?}");
        assert!(total.digest_mismatches > 0 && total.timeouts > 0 && total.restarts > 50, "{total:?}");
        assert!(total.acks > 100, "{total:?}");
        // Both a central that takes audio and one that does not (protocol version 3).
        assert!(total.audio_stored > 1000 && total.audio_runs > 50 && total.video_only_runs > 20, "{total:?}");
    }
}

//! The warning a unit with `[store] keep_unretrieved` gives before retention has to delete
//! recordings central has not retrieved: pure logic over a retention pass's report.

use std::time::Duration;

use media_store::GroomReport;

use crate::status::StoreWarning;

/// What to say after a retention pass, given the unit's recording rate (bits per second) and
/// how far ahead to warn: `None` while more than `horizon` of recording fits before retention
/// reaches what central has not retrieved.
pub fn unretrieved(report: &GroomReport, rate_bps: u64, horizon: Duration) -> Option<StoreWarning> {
    const WHAT_TO_DO: &str = "bring the unit where it has a link to central (depot Wi-Fi), have central retrieve \
                              what matters, or evidence-lock it";
    if report.uncovered_removed_bytes > 0 {
        return Some(StoreWarning {
            deleting: true,
            message: format!(
                "retention deleted {} MB of recordings central had not retrieved, because the disk is full; {WHAT_TO_DO}",
                report.uncovered_removed_bytes.div_ceil(1_000_000)
            ),
        });
    }
    let room = report.covered_reserve_bytes.saturating_add(report.headroom_bytes);
    let bytes_per_s = rate_bps as f64 / 8.0;
    if bytes_per_s <= 0.0 {
        return None;
    }
    let left = Duration::from_secs_f64(room as f64 / bytes_per_s);
    (left < horizon).then(|| StoreWarning {
        deleting: false,
        message: format!(
            "at the current {:.1} Mbit/s, retention will start deleting recordings central has not retrieved in \
             about {}; {WHAT_TO_DO}",
            rate_bps as f64 / 1e6,
            human(left)
        ),
    })
}

fn human(d: Duration) -> String {
    let minutes = d.as_secs() / 60;
    if minutes < 120 { format!("{minutes} min") } else { format!("{} h", minutes / 60) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(removed: u64, reserve: u64, headroom: u64) -> GroomReport {
        GroomReport {
            uncovered_removed_bytes: removed,
            covered_reserve_bytes: reserve,
            headroom_bytes: headroom,
            ..Default::default()
        }
    }

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn quiet_while_more_than_the_horizon_fits() {
        // 4 Mbit/s is 43.2 GB a day; 50 GB of room is more than a day.
        assert_eq!(unretrieved(&report(0, 30_000_000_000, 20_000_000_000), 4_000_000, DAY), None);
        // No camera recording: nothing to forecast.
        assert_eq!(unretrieved(&report(0, 0, 0), 0, DAY), None);
    }

    #[test]
    fn warns_ahead_with_the_time_left() {
        // 4 Mbit/s = 0.5 MB/s; 1.8 GB of room lasts an hour.
        let w = unretrieved(&report(0, 1_000_000_000, 800_000_000), 4_000_000, DAY).unwrap();
        assert!(!w.deleting);
        assert!(w.message.contains("in about 60 min") && w.message.contains("4.0 Mbit/s"), "{}", w.message);
        let w = unretrieved(&report(0, 5_000_000_000, 4_000_000_000), 4_000_000, DAY).unwrap();
        assert!(w.message.contains("in about 5 h"), "{}", w.message);
    }

    #[test]
    fn says_so_once_it_deleted_unretrieved_recordings() {
        let w = unretrieved(&report(2_500_000, 0, 0), 4_000_000, DAY).unwrap();
        assert!(w.deleting);
        assert!(w.message.contains("deleted 3 MB") && w.message.contains("depot Wi-Fi"), "{}", w.message);
    }
}

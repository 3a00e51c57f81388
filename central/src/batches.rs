//! Taking work off a queue in batches, for the threads that group-commit (`hellos.rs`,
//! `sync_writes.rs`): what arrived while the last batch was being committed goes together.

use std::sync::mpsc::Receiver;

/// Waits for the next item, then takes whatever else is already queued, up to `max` in all;
/// `None` once every sender is gone.
pub(crate) fn next_batch<T>(rx: &Receiver<T>, max: usize) -> Option<Vec<T>> {
    let mut batch = vec![rx.recv().ok()?];
    batch.extend(rx.try_iter().take(max.saturating_sub(1)));
    Some(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_what_was_queued_up_to_the_most() {
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..5 {
            tx.send(i).unwrap();
        }
        assert_eq!(next_batch(&rx, 3), Some(vec![0, 1, 2]));
        assert_eq!(next_batch(&rx, 3), Some(vec![3, 4]));
        drop(tx);
        assert_eq!(next_batch(&rx, 3), None);
    }
}

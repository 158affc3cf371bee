//! The data path's own evidence against a real: clients retransmitting the
//! SYN of a half-open flow (the real did not answer the first). A thread
//! reads every real's count (`REAL_SYN_RETRANS`, one batch syscall) every
//! [`POLL`] and asks the checker to probe at once each real whose count
//! rose. It never changes a real's health itself: only the probe's result
//! counts, so a SYN flood (which the reals answer) takes no real down; a
//! flood that repeats its SYNs costs at most one extra probe per real and
//! poll.

use std::{
    collections::HashMap,
    sync::mpsc::{self, RecvTimeoutError},
    thread::JoinHandle,
    time::Duration,
};

use crate::{balancer::model::RealKey, dataplane::SynRetransmits, health::scheduler::ProbeTrigger};

/// How often the counts are read: a client's first SYN retransmission
/// comes 1 s after its SYN, so this adds little to the detection.
pub(super) const POLL: Duration = Duration::from_millis(150);

/// Each configured real's slot in the data path's per-real maps.
pub(super) type RealSlots = Vec<(u32, RealKey)>;

/// The polling thread; stops when dropped or [`Evidence::stop`]ped.
pub(super) struct Evidence {
    reals: mpsc::Sender<RealSlots>,
    thread: JoinHandle<()>,
}

impl Evidence {
    pub(super) fn start(
        reader: SynRetransmits,
        trigger: ProbeTrigger,
        reals: RealSlots,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("evidence".into())
            .spawn(move || run(&reader, &trigger, &rx, reals))?;
        Ok(Self { reals: tx, thread })
    }

    /// The reals to watch from now on (after a config change).
    pub(super) fn set_reals(&self, reals: RealSlots) {
        let _ = self.reals.send(reals);
    }

    pub(super) fn stop(self) {
        drop(self.reals);
        let _ = self.thread.join();
    }
}

fn run(
    reader: &SynRetransmits,
    trigger: &ProbeTrigger,
    updates: &mpsc::Receiver<RealSlots>,
    mut reals: RealSlots,
) {
    let mut last = HashMap::new();
    let mut failing = false;
    loop {
        match updates.recv_timeout(POLL) {
            Ok(new) => {
                reals = new;
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let slots = reals.iter().map(|(slot, _)| slot + 1).max().unwrap_or(0);
        let counts = match reader.read(slots) {
            Ok(counts) => {
                failing = false;
                counts
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "reading the retransmitted-SYN counts");
                }
                failing = true;
                continue;
            }
        };
        for key in rising(&mut last, &reals, &counts) {
            if trigger.probe_now(&key) {
                tracing::debug!(
                    service = %key.service,
                    real = %key.real,
                    "retransmitted SYNs: probing the real now"
                );
            }
        }
    }
}

/// The reals whose count rose since the last read. A real seen for the
/// first time (or in a new slot) only sets its baseline; a count that fell
/// (the slot was cleared for a new real) too.
fn rising(
    last: &mut HashMap<(u32, RealKey), u64>,
    reals: &[(u32, RealKey)],
    counts: &[u64],
) -> Vec<RealKey> {
    let mut out = Vec::new();
    let mut seen = HashMap::with_capacity(reals.len());
    for &(slot, key) in reals {
        let Some(&count) = counts.get(slot as usize) else {
            continue;
        };
        if last.get(&(slot, key)).is_some_and(|&before| count > before) {
            out.push(key);
        }
        seen.insert((slot, key), count);
    }
    *last = seen;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u8) -> RealKey {
        let service = crate::admin::parse_service("10.0.0.1:80/tcp").unwrap();
        RealKey::new(service, format!("192.168.0.{i}:80").parse().unwrap())
    }

    #[test]
    fn only_a_real_whose_count_rose_is_probed() {
        let reals = vec![(0, key(1)), (3, key(2))];
        let mut last = HashMap::new();
        // The first read is the baseline: counts from before lbd started
        // (an adopted data path) are not evidence now.
        assert!(rising(&mut last, &reals, &[5, 0, 0, 7]).is_empty());
        assert!(rising(&mut last, &reals, &[5, 0, 0, 7]).is_empty());
        assert_eq!(rising(&mut last, &reals, &[5, 0, 0, 9]), [key(2)]);
        assert_eq!(rising(&mut last, &reals, &[6, 0, 0, 9]), [key(1)]);
        // Slot 3 given to a new real (cleared): a baseline again.
        let reals = vec![(0, key(1)), (3, key(3))];
        assert!(rising(&mut last, &reals, &[6, 0, 0, 1]).is_empty());
        assert_eq!(rising(&mut last, &reals, &[6, 0, 0, 2]), [key(3)]);
        // A slot beyond what was read is skipped.
        assert!(rising(&mut last, &[(9, key(4))], &[1]).is_empty());
    }
}

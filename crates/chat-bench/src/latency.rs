//! Send-to-receive latency of every delivery, in HDR histograms.
//!
//! One histogram per subscriber would cost megabytes at ten thousand subscribers, one
//! shared histogram a lock per delivery. So subscribers buffer a batch of samples and
//! record it into one of a few shards under one lock; the shards merge at the end.
use std::sync::{Arc, Mutex};

use hdrhistogram::Histogram;

const SHARDS: usize = 8;
/// Samples a subscriber keeps before taking a shard's lock.
const BATCH: usize = 256;
/// Highest recordable latency (one minute, in microseconds); longer ones are clamped.
const MAX_US: u64 = 60_000_000;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid bounds")
}

#[derive(Clone)]
pub struct Latencies {
    shards: Arc<Vec<Mutex<Histogram<u64>>>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            shards: Arc::new((0..SHARDS).map(|_| Mutex::new(histogram())).collect()),
        }
    }
}

impl Latencies {
    /// A recorder for one subscriber; `n` picks its shard.
    pub fn recorder(&self, n: usize) -> Recorder {
        Recorder {
            into: self.clone(),
            shard: n % SHARDS,
            samples: Vec::new(),
        }
    }

    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for shard in self.shards.iter() {
            all.add(&*shard.lock().unwrap()).expect("same bounds");
        }
        all
    }
}

pub struct Recorder {
    into: Latencies,
    shard: usize,
    samples: Vec<u64>,
}

impl Recorder {
    pub fn record_ns(&mut self, ns: u64) {
        if self.samples.capacity() == 0 {
            self.samples.reserve_exact(BATCH);
        }
        self.samples.push((ns / 1000).clamp(1, MAX_US));
        if self.samples.len() == BATCH {
            self.flush();
        }
    }

    pub fn flush(&mut self) {
        if self.samples.is_empty() {
            return;
        }
        let mut hist = self.into.shards[self.shard].lock().unwrap();
        for &us in &self.samples {
            hist.saturating_record(us);
        }
        self.samples.clear();
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_from_all_recorders_reach_the_merge() {
        let lat = Latencies::default();
        let mut a = lat.recorder(0);
        let mut b = lat.recorder(1);
        for i in 1..=1000u64 {
            a.record_ns(i * 1000);
        }
        b.record_ns(5_000_000);
        drop((a, b));
        let all = lat.merged();
        assert_eq!(all.len(), 1001);
        assert_eq!(all.value_at_quantile(0.5), 501);
        assert!(all.max() >= 5000 && all.max() < 5010);
    }
}

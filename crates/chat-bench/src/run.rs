//! One measurement against one fan-out, in phases that never overlap: connect every
//! subscriber (Welcome received), read the server's idle memory, send for the set time,
//! drain, stop, then add everything up.
//!
//! Connecting first and sending after means no subscriber misses a message for being
//! late, so "expected" is exact: each accepted message times the subscribers of its room.
use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{sync::mpsc, task::JoinHandle, time::Instant};
use tokio_util::sync::CancellationToken;

use crate::{
    config::BenchConfig,
    latency::Latencies,
    proc_stats::{self, ProcSample},
    progress,
    report::{Latency, Measurement},
    sender::{Poster, RawPoster, Sender, SenderOutcome},
    stamp::Clock,
    subscriber::{End, Link, Outcome, Subscriber},
    tally::Tally,
};

/// Connections opening at once; more would overflow the server's accept backlog and
/// wait out SYN retransmits.
const CONNECTING_AT_ONCE: usize = 256;
/// A connect phase making no progress for this long has failed.
const CONNECT_STALL: Duration = Duration::from_secs(20);

/// A fan-out to measure: one server, or several sharing one chat.
pub struct Target {
    pub name: String,
    /// Subscriber `i` and sender `i` connect to `addrs[i % len]`.
    pub addrs: Vec<SocketAddr>,
    pub link: Link,
    /// The servers' processes, whose CPU and memory are added up.
    pub pids: Vec<u32>,
}

impl Target {
    fn addr(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }
}

/// What every phase shares.
struct Run<'a> {
    cfg: &'a BenchConfig,
    target: &'a Target,
    rooms: &'a [String],
    clock: Clock,
    tally: Arc<Tally>,
    latencies: Latencies,
    stop: CancellationToken,
}

pub async fn measure(
    cfg: &BenchConfig,
    target: &Target,
    rooms: &[String],
) -> Result<Measurement, String> {
    let run = Run {
        cfg,
        target,
        rooms,
        clock: Clock::start(),
        tally: Arc::new(Tally::default()),
        latencies: Latencies::default(),
        stop: CancellationToken::new(),
    };
    let stop_progress = CancellationToken::new();
    let progress = (!cfg.quiet).then(|| {
        progress::spawn(
            target.name.clone(),
            cfg.subscribers,
            run.tally.clone(),
            stop_progress.clone(),
        )
    });
    let result = run.phases().await;
    run.stop.cancel();
    stop_progress.cancel();
    if let Some(p) = progress {
        let _ = p.await;
    }
    result
}

impl Run<'_> {
    async fn phases(&self) -> Result<Measurement, String> {
        let cfg = self.cfg;
        let mut m = Measurement {
            target: self.target.name.clone(),
            subscribers: cfg.subscribers,
            rooms: self.rooms.len(),
            senders: cfg.senders,
            size: cfg.size,
            offered_msgs_per_s: cfg.rate,
            cores: std::thread::available_parallelism().map_or(0, |n| n.get()),
            ..Default::default()
        };
        m.server_rss_before_kib = self.server("before")?.map(|s| s.rss_kib);

        let connect_start = Instant::now();
        let subscribers = self.connect().await?;
        m.connect_s = connect_start.elapsed().as_secs_f64();
        tokio::time::sleep(Duration::from_millis(cfg.settle_ms)).await;
        m.server_rss_idle_kib = self.server("idle")?.map(|s| s.rss_kib);
        if cfg.senders == 0 {
            self.stop.cancel();
            for s in subscribers {
                let _ = s.await;
            }
            return Ok(m);
        }

        let mut posters = Vec::with_capacity(cfg.senders);
        for i in 0..cfg.senders {
            posters.push(match self.target.link {
                Link::Raw => RawPoster::connect(self.target.addr(i)).await?,
                _ => Poster::grpc(self.target.addr(i)).await?,
            });
        }
        let server_before = self.server("at start")?;
        let bench_before = proc_stats::sample(None).ok();
        let t0 = self.clock.now_ns();
        let send_start = Instant::now();
        let sent = self.send(posters, send_start).await?;
        m.send_s = send_start.elapsed().as_secs_f64();

        // Drain: until every owed delivery arrived, every subscriber ended, or time is up.
        let per_room = subscribers_per_room(cfg.subscribers, self.rooms.len());
        m.expected = sent
            .accepted
            .iter()
            .zip(&per_room)
            .map(|(n, subs)| n * *subs as u64)
            .sum();
        let drain_until = Instant::now() + Duration::from_millis(cfg.drain_ms);
        while self.tally.delivered() < m.expected
            && self.tally.ended() < cfg.subscribers
            && Instant::now() < drain_until
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let server_after = self.server("at the end")?;
        let bench_after = proc_stats::sample(None).ok();
        self.stop.cancel();
        let mut outcomes = Vec::with_capacity(subscribers.len());
        for s in subscribers {
            outcomes.push(s.await.map_err(|e| format!("subscriber panicked: {e}"))?);
        }

        m.sent = sent.accepted.iter().sum();
        m.send_errors = sent.errors;
        m.first_send_error = sent.first_error.map(|e| {
            if e.contains("ResourceExhausted") {
                format!(
                    "{e}; is the server's rate limit on? start it with --max-messages-per-sec 0"
                )
            } else {
                e
            }
        });
        add_up(&mut m, &outcomes, &sent.accepted);
        let last = outcomes
            .iter()
            .map(|o| o.last_delivery_ns)
            .max()
            .unwrap_or(0);
        m.delivery_s = last.saturating_sub(t0) as f64 / 1e9;
        if m.delivery_s > 0.0 {
            m.deliveries_per_s = m.received as f64 / m.delivery_s;
        }
        let hist = self.latencies.merged();
        if !hist.is_empty() {
            m.latency = Some(Latency {
                count: hist.len(),
                p50: hist.value_at_quantile(0.5),
                p99: hist.value_at_quantile(0.99),
                p999: hist.value_at_quantile(0.999),
                max: hist.max(),
            });
        }
        if let (Some(before), Some(after)) = (server_before, server_after) {
            m.server_cpu_s = Some(after.cpu_s - before.cpu_s);
            m.server_peak_rss_kib = Some(after.peak_rss_kib);
        }
        if let (Some(before), Some(after)) = (bench_before, bench_after) {
            m.bench_cpu_s = after.cpu_s - before.cpu_s;
        }
        Ok(m)
    }

    /// Starts every subscriber, a bounded number connecting at a time, and returns once
    /// all have their Welcome. Any that fails to connect fails the run.
    async fn connect(&self) -> Result<Vec<JoinHandle<Outcome>>, String> {
        let (ready_tx, mut ready) = mpsc::channel(CONNECTING_AT_ONCE);
        let mut handles = Vec::with_capacity(self.cfg.subscribers);
        let mut welcomed = 0;
        for i in 0..self.cfg.subscribers {
            if handles.len() - welcomed >= CONNECTING_AT_ONCE {
                self.welcome_one(&mut ready, &mut welcomed).await?;
            }
            let room = i % self.rooms.len();
            let sub = Subscriber {
                room,
                room_name: self.rooms[room].clone(),
                link: self.target.link,
                clock: self.clock,
                tally: self.tally.clone(),
                recorder: self.latencies.recorder(i),
                cancel: self.stop.clone(),
                ready: ready_tx.clone(),
            };
            handles.push(tokio::spawn(sub.run(self.target.addr(i))));
        }
        while welcomed < handles.len() {
            self.welcome_one(&mut ready, &mut welcomed).await?;
        }
        Ok(handles)
    }

    async fn welcome_one(
        &self,
        ready: &mut mpsc::Receiver<Result<(), String>>,
        welcomed: &mut usize,
    ) -> Result<(), String> {
        match tokio::time::timeout(CONNECT_STALL, ready.recv()).await {
            Ok(Some(Ok(()))) => {
                *welcomed += 1;
                Ok(())
            }
            Ok(Some(Err(why))) => Err(format!("a subscriber could not connect: {why}")),
            Ok(None) => Err("the subscribers are gone".into()),
            Err(_) => Err(format!(
                "connecting stalled: {welcomed} of {} subscribers welcomed, none more in {CONNECT_STALL:?}",
                self.cfg.subscribers
            )),
        }
    }

    /// Runs every sender to its end and sums what the server accepted.
    async fn send(&self, posters: Vec<Poster>, start: Instant) -> Result<SenderOutcome, String> {
        let cfg = self.cfg;
        let senders = cfg.senders as u64;
        let room_names = Arc::new(self.rooms.to_vec());
        let stop_senders = CancellationToken::new();
        let handles: Vec<_> = posters
            .into_iter()
            .enumerate()
            .map(|(i, poster)| {
                let sender = Sender {
                    index: i as u32,
                    rooms: room_names.clone(),
                    size: cfg.size,
                    window: cfg.window,
                    rate: cfg.rate.map(|r| r / senders as f64),
                    budget: cfg.messages / senders + u64::from((i as u64) < cfg.messages % senders),
                    until: start + cfg.duration(),
                    clock: self.clock,
                    tally: self.tally.clone(),
                    cancel: stop_senders.clone(),
                };
                tokio::spawn(sender.run(poster))
            })
            .collect();
        let mut sent = SenderOutcome {
            accepted: vec![0; self.rooms.len()],
            ..Default::default()
        };
        for h in handles {
            let out = h.await.map_err(|e| format!("sender panicked: {e}"))?;
            for (total, n) in sent.accepted.iter_mut().zip(&out.accepted) {
                *total += n;
            }
            sent.errors += out.errors;
            if sent.first_error.is_none() {
                sent.first_error = out.first_error;
            }
        }
        Ok(sent)
    }

    /// A /proc sample of the servers added up, when their pids are known.
    fn server(&self, when: &str) -> Result<Option<ProcSample>, String> {
        let mut total: Option<ProcSample> = None;
        for &pid in &self.target.pids {
            let one = proc_stats::sample(Some(pid))
                .map_err(|e| format!("reading /proc/{pid} {when}: {e}"))?;
            let sum = total.get_or_insert(ProcSample {
                cpu_s: 0.0,
                rss_kib: 0,
                peak_rss_kib: 0,
            });
            sum.cpu_s += one.cpu_s;
            sum.rss_kib += one.rss_kib;
            sum.peak_rss_kib += one.peak_rss_kib;
        }
        Ok(total)
    }
}

fn subscribers_per_room(subscribers: usize, rooms: usize) -> Vec<usize> {
    (0..rooms)
        .map(|r| subscribers / rooms + usize::from(r < subscribers % rooms))
        .collect()
}

/// Folds every subscriber's checks into the measurement.
fn add_up(m: &mut Measurement, outcomes: &[Outcome], accepted: &[u64]) {
    for o in outcomes {
        let owed = accepted[o.room];
        m.received += o.check.received;
        m.lost += owed.saturating_sub(o.check.received);
        m.extra += o.check.received.saturating_sub(owed);
        m.duplicated += o.check.duplicated;
        m.out_of_order += o.check.out_of_order;
        m.foreign += o.check.foreign;
        match &o.end {
            End::Stopped => {}
            End::CutOff(why) => {
                m.cut_off += 1;
                m.first_end.get_or_insert_with(|| format!("ABORTED: {why}"));
            }
            End::Closed(why) => {
                m.closed += 1;
                m.first_end.get_or_insert_with(|| why.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_spread_evenly() {
        assert_eq!(subscribers_per_room(10, 3), [4, 3, 3]);
        assert_eq!(subscribers_per_room(1000, 1), [1000]);
    }
}

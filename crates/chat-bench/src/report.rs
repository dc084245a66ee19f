//! The figures of a run and how they print: one block per fan-out measured, then our
//! deliveries per second as a ratio to the baseline's. Plain aligned text, so a terminal,
//! a log and BENCHMARKS.md all show it the same way.
use std::fmt;

#[derive(Debug, Clone, Default)]
pub struct Measurement {
    /// What was measured, e.g. "chat-server, grpc-web".
    pub target: String,
    pub subscribers: usize,
    pub rooms: usize,
    pub senders: usize,
    pub size: usize,
    pub connect_s: f64,
    /// Server RSS before the subscribers connected, and once they had and idled.
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_idle_kib: Option<u64>,
    /// Offered messages per second (all senders); None = full speed.
    pub offered_msgs_per_s: Option<f64>,
    pub send_s: f64,
    pub sent: u64,
    pub send_errors: u64,
    pub first_send_error: Option<String>,
    /// Deliveries owed: each accepted message times the subscribers of its room.
    pub expected: u64,
    /// Distinct messages that arrived, over all subscribers.
    pub received: u64,
    pub lost: u64,
    /// Arrived but never accepted (a send that failed yet got through).
    pub extra: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub foreign: u64,
    /// Subscribers ended with grpc-status ABORTED (fell too far behind).
    pub cut_off: usize,
    /// Subscribers whose stream ended any other way before the run stopped it.
    pub closed: usize,
    pub first_end: Option<String>,
    /// From the first send to the last first delivery.
    pub delivery_s: f64,
    pub deliveries_per_s: f64,
    pub latency: Option<Latency>,
    /// Server CPU seconds over the sending and draining, and its peak RSS.
    pub server_cpu_s: Option<f64>,
    pub server_peak_rss_kib: Option<u64>,
    pub bench_cpu_s: f64,
    /// Cores of the machine, shared by the server and the load generator.
    pub cores: usize,
}

/// Send-to-receive latency, microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Latency {
    pub count: u64,
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Measurement {
    /// Every message was accepted and reached every subscriber of its room, once, in
    /// order. Refused sends count against it: a benchmark whose load was refused (a rate
    /// limit left on) measured something else.
    pub fn is_clean(&self) -> bool {
        self.send_errors == 0
            && self.lost == 0
            && self.extra == 0
            && self.duplicated == 0
            && self.out_of_order == 0
            && self.cut_off == 0
            && self.closed == 0
    }

    pub fn rss_per_subscriber_kib(&self) -> Option<f64> {
        let (before, idle) = (self.server_rss_before_kib?, self.server_rss_idle_kib?);
        Some((idle as f64 - before as f64) / self.subscribers as f64)
    }

    pub fn server_us_per_delivery(&self) -> Option<f64> {
        let cpu = self.server_cpu_s?;
        (self.received > 0).then(|| cpu * 1e6 / self.received as f64)
    }

    pub fn bench_us_per_delivery(&self) -> Option<f64> {
        (self.received > 0).then(|| self.bench_cpu_s * 1e6 / self.received as f64)
    }

    /// Deliveries per second the machine could make if the server and the load generator
    /// had every core to themselves at this CPU cost per delivery. A busy machine lowers
    /// the measured rate far more than the cost per delivery, so this tells what the
    /// code would do on a quiet one (an upper bound: it ignores waiting and contention).
    pub fn cpu_bound_per_s(&self) -> Option<f64> {
        let us = self.server_us_per_delivery()? + self.bench_us_per_delivery()?;
        (us > 0.0 && self.cores > 0).then(|| self.cores as f64 * 1e6 / us)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub main: Measurement,
    pub baseline: Option<Measurement>,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.main.is_clean() && self.baseline.as_ref().is_none_or(|b| b.is_clean())
    }

    /// Our deliveries per second over the baseline's.
    pub fn ratio(&self) -> Option<f64> {
        let base = self.baseline.as_ref()?.deliveries_per_s;
        (base > 0.0).then(|| self.main.deliveries_per_s / base)
    }

    /// The same ratio from CPU per delivery (the ceilings): on a machine where other work
    /// takes cores, the two runs get unequal shares and the measured ratio swings, while
    /// this one holds.
    pub fn ceiling_ratio(&self) -> Option<f64> {
        let base = self.baseline.as_ref()?.cpu_bound_per_s()?;
        Some(self.main.cpu_bound_per_s()? / base)
    }
}

const LABEL: usize = 24;

fn line(f: &mut fmt::Formatter<'_>, label: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(f, "  {label:<LABEL$} {value}")
}

/// 1234567 -> "1,234,567".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per_room = self.subscribers / self.rooms.max(1);
        let speed = match self.offered_msgs_per_s {
            _ if self.senders == 0 => "idle".to_owned(),
            Some(rate) => format!(
                "{} msg/s offered ({} deliveries/s)",
                grouped(rate as u64),
                grouped((rate * per_room as f64) as u64)
            ),
            None => "full speed".to_owned(),
        };
        writeln!(
            f,
            "{}: {} room(s) x {} subscribers, {} senders, {}, {}-byte text",
            self.target, self.rooms, per_room, self.senders, speed, self.size
        )?;
        line(
            f,
            "connected",
            format!(
                "{} subscribers in {:.2} s",
                self.subscribers, self.connect_s
            ),
        )?;
        if let (Some(idle), Some(per)) = (self.server_rss_idle_kib, self.rss_per_subscriber_kib()) {
            line(
                f,
                "server RSS, idle",
                format!("{} KiB; {per:.2} KiB per subscriber", grouped(idle)),
            )?;
        }
        if self.senders == 0 {
            return Ok(());
        }
        let mut sent = format!(
            "{} messages in {:.2} s ({}/s); {} send errors",
            grouped(self.sent),
            self.send_s,
            grouped((self.sent as f64 / self.send_s.max(1e-9)) as u64),
            self.send_errors
        );
        if let Some(e) = &self.first_send_error {
            sent.push_str(&format!(" (first: {e})"));
        }
        line(f, "sent", sent)?;
        line(
            f,
            "deliveries",
            format!(
                "{} of {} in {:.2} s: {}/s",
                grouped(self.received),
                grouped(self.expected),
                self.delivery_s,
                grouped(self.deliveries_per_s as u64)
            ),
        )?;
        let mut checks = format!(
            "{} / {} / {}",
            self.lost, self.duplicated, self.out_of_order
        );
        if self.extra > 0 {
            checks.push_str(&format!("; {} unexpected extra", self.extra));
        }
        if self.foreign > 0 {
            checks.push_str(&format!("; {} unstamped messages ignored", self.foreign));
        }
        line(f, "lost/dup/out of order", checks)?;
        let mut ends = format!(
            "{} cut off (ABORTED), {} ended otherwise",
            self.cut_off, self.closed
        );
        if let Some(e) = &self.first_end {
            ends.push_str(&format!(" (first: {e})"));
        }
        line(f, "subscribers ended early", ends)?;
        if let Some(l) = self.latency {
            line(
                f,
                "latency send->receive",
                format!(
                    "p50 {}  p99 {}  p99.9 {}  max {}",
                    ms(l.p50),
                    ms(l.p99),
                    ms(l.p999),
                    ms(l.max)
                ),
            )?;
        }
        if let Some(cpu) = self.server_cpu_s {
            line(
                f,
                "server CPU",
                format!(
                    "{cpu:.2} s ({:.2} cores; {:.3} us per delivery, {:.1} us per message)",
                    cpu / self.delivery_s.max(self.send_s).max(1e-9),
                    self.server_us_per_delivery().unwrap_or(0.0),
                    cpu * 1e6 / self.sent.max(1) as f64
                ),
            )?;
        }
        if let Some(peak) = self.server_peak_rss_kib {
            line(f, "server peak RSS", format!("{} KiB", grouped(peak)))?;
        }
        line(
            f,
            "bench CPU",
            format!(
                "{:.2} s ({:.3} us per delivery)",
                self.bench_cpu_s,
                self.bench_us_per_delivery().unwrap_or(0.0)
            ),
        )?;
        if let Some(bound) = self.cpu_bound_per_s() {
            line(
                f,
                "CPU-bound ceiling",
                format!(
                    "{}/s with {} cores all ours (server + bench CPU per delivery)",
                    grouped(bound as u64),
                    self.cores
                ),
            )?;
        }
        line(
            f,
            "verdict",
            if self.is_clean() {
                "every message once, in order"
            } else {
                "NOT CLEAN: see the lines above"
            },
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.main)?;
        if let Some(base) = &self.baseline {
            writeln!(f)?;
            write!(f, "{base}")?;
            writeln!(f)?;
            if let Some(ratio) = self.ratio() {
                writeln!(
                    f,
                    "{:<width$} {ratio:.3}",
                    "deliveries/s, ours / baseline:",
                    width = LABEL + 2
                )?;
            }
            if let Some(ratio) = self.ceiling_ratio() {
                writeln!(
                    f,
                    "{:<width$} {ratio:.3}",
                    "CPU-bound ceilings, ours / baseline:",
                    width = LABEL + 2
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
    }

    #[test]
    fn any_loss_or_cut_off_makes_a_run_unclean() {
        let clean = Measurement {
            subscribers: 1,
            rooms: 1,
            senders: 1,
            ..Default::default()
        };
        assert!(clean.is_clean());
        assert!(clean.to_string().contains("every message once, in order"));
        for dirty in [
            Measurement {
                lost: 1,
                ..clean.clone()
            },
            Measurement {
                out_of_order: 1,
                ..clean.clone()
            },
            Measurement {
                cut_off: 1,
                ..clean.clone()
            },
            Measurement {
                send_errors: 1,
                ..clean.clone()
            },
        ] {
            assert!(!dirty.is_clean());
            assert!(dirty.to_string().contains("NOT CLEAN"));
        }
    }

    #[test]
    fn ceiling_from_cpu_per_delivery() {
        let m = Measurement {
            received: 1_000_000,
            server_cpu_s: Some(0.75),
            bench_cpu_s: 0.25,
            cores: 2,
            ..Default::default()
        };
        assert_eq!(m.cpu_bound_per_s(), Some(2_000_000.0));
        let unknown_server = Measurement {
            server_cpu_s: None,
            ..m
        };
        assert_eq!(unknown_server.cpu_bound_per_s(), None);
    }

    #[test]
    fn ratio_to_the_baseline() {
        let report = Report {
            main: Measurement {
                deliveries_per_s: 1.0e6,
                ..Default::default()
            },
            baseline: Some(Measurement {
                deliveries_per_s: 4.0e6,
                ..Default::default()
            }),
        };
        assert_eq!(report.ratio(), Some(0.25));
        assert_eq!(report.ceiling_ratio(), None, "no CPU figures, no ceiling");
    }
}

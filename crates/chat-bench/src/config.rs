//! What one bench run does, parsed by clap and checked before anything connects.
//!
//! The bench opens thousands of sockets and floods them, so it only ever targets
//! loopback and every run is capped in size and time: a typo cannot turn it into a load
//! test of someone else's server, or into a run that never ends.
use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use clap::{Args, ValueEnum};

pub const MAX_SUBSCRIBERS: usize = 20_000;
pub const MAX_SENDERS: usize = 32;
pub const MAX_DURATION_S: f64 = 600.0;
pub const MAX_MESSAGES: u64 = 100_000_000;
pub const MAX_WINDOW: usize = 1024;
/// The server refuses longer texts (validate::MAX_TEXT_BYTES).
pub const MAX_SIZE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// grpc-web over HTTP/1.1, as browsers reach the server.
    GrpcWeb,
    /// Native gRPC over HTTP/2 (tonic), one connection per subscriber.
    Native,
}

#[derive(Debug, Clone, Args)]
pub struct BenchConfig {
    /// The chat server, `host:port` or `http://host:port`; loopback only. Several (repeat
    /// it or separate with commas): servers sharing one database, subscribers and senders
    /// spread over them in turn.
    #[arg(long, default_value = "127.0.0.1:8080", value_delimiter = ',')]
    pub addr: Vec<String>,

    /// How subscribers connect. Senders always use native gRPC.
    #[arg(long, value_enum, default_value_t = Transport::GrpcWeb)]
    pub transport: Transport,

    /// Subscribers, spread evenly over the rooms.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,

    #[arg(long, default_value_t = 1)]
    pub rooms: usize,

    /// Sending clients (usernames bench-s0, bench-s1, ...). 0 = connect the subscribers,
    /// measure the server's memory while they idle, and stop.
    #[arg(long, default_value_t = 4)]
    pub senders: usize,

    /// Messages per second, all senders together; absent = as fast as the server accepts.
    #[arg(long)]
    pub rate: Option<f64>,

    /// Requests each sender keeps in flight.
    #[arg(long, default_value_t = 64)]
    pub window: usize,

    /// How long the senders send, in seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Stop sending after this many messages in all, even before --duration.
    #[arg(long, default_value_t = 10_000_000)]
    pub messages: u64,

    /// Bytes of text per message (a stamp, padded with 'x').
    #[arg(long, default_value_t = 64)]
    pub size: usize,

    /// After the senders stop, wait at most this long for deliveries to arrive, in ms.
    #[arg(long, default_value_t = 5_000)]
    pub drain_ms: u64,

    /// With every subscriber connected, wait this long before reading the server's
    /// memory, so it settles, in ms.
    #[arg(long, default_value_t = 1_000)]
    pub settle_ms: u64,

    /// The server's pid, to report its CPU time and memory from /proc. Several servers:
    /// each one's (repeat it or separate with commas), added up.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,

    /// Also run the same traffic against a minimal raw-TCP fan-out (a child process) and
    /// report our figures as a ratio to it.
    #[arg(long)]
    pub baseline: bool,

    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl Default for BenchConfig {
    fn default() -> Self {
        use clap::Parser;
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            config: BenchConfig,
        }
        Only::parse_from(["chat-bench"]).config
    }
}

impl BenchConfig {
    /// The target addresses, once each is known to be loopback and every bound holds.
    pub fn check(&self) -> Result<Vec<SocketAddr>, String> {
        let addrs = self
            .addr
            .iter()
            .map(|a| loopback_addr(a))
            .collect::<Result<Vec<_>, _>>()?;
        if addrs.is_empty() {
            return Err("--addr: at least one server".into());
        }
        let within = |ok: bool, what: String| if ok { Ok(()) } else { Err(what) };
        within(
            (1..=MAX_SUBSCRIBERS).contains(&self.subscribers),
            format!("--subscribers must be 1..={MAX_SUBSCRIBERS}"),
        )?;
        within(
            (1..=self.subscribers).contains(&self.rooms),
            "--rooms must be 1..=subscribers (every room needs a subscriber)".into(),
        )?;
        within(
            self.senders <= MAX_SENDERS,
            format!("--senders must be at most {MAX_SENDERS}"),
        )?;
        within(
            (1..=MAX_WINDOW).contains(&self.window),
            format!("--window must be 1..={MAX_WINDOW}"),
        )?;
        within(
            self.duration > 0.0 && self.duration <= MAX_DURATION_S,
            format!("--duration must be more than 0 and at most {MAX_DURATION_S} s"),
        )?;
        within(
            (1..=MAX_MESSAGES).contains(&self.messages),
            format!("--messages must be 1..={MAX_MESSAGES}"),
        )?;
        within(
            (1..=MAX_SIZE).contains(&self.size),
            format!("--size must be 1..={MAX_SIZE}"),
        )?;
        within(
            self.rate.is_none_or(|r| r > 0.0 && r.is_finite()),
            "--rate must be a positive number".into(),
        )?;
        within(
            self.drain_ms <= 60_000 && self.settle_ms <= 60_000,
            "--drain-ms and --settle-ms must be at most 60000".into(),
        )?;
        Ok(addrs)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.duration)
    }
}

/// Parses `host:port` (optionally `http://`), accepting only loopback addresses.
pub fn loopback_addr(target: &str) -> Result<SocketAddr, String> {
    let bare = target
        .strip_prefix("http://")
        .unwrap_or(target)
        .trim_end_matches('/');
    let addr = match bare.strip_prefix("localhost:") {
        Some(port) => port
            .parse()
            .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            .map_err(|_| format!("{target:?}: bad port")),
        None => bare.parse::<SocketAddr>().map_err(|_| {
            format!(
                "{target:?} is not an address like 127.0.0.1:8080 \
                 (names other than localhost are not resolved)"
            )
        }),
    }?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to target {addr}: chat-bench only runs against loopback (127.0.0.0/8, ::1)"
        ));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        for ok in [
            "127.0.0.1:8080",
            "http://127.0.0.2:80/",
            "[::1]:9",
            "localhost:1",
        ] {
            assert!(loopback_addr(ok).is_ok(), "{ok}");
        }
        for bad in ["10.0.0.1:8080", "0.0.0.0:8080", "example.com:80", "[::]:80"] {
            assert!(loopback_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_one_of_several_servers_must_be_loopback() {
        let two = BenchConfig {
            addr: vec!["127.0.0.1:1".into(), "127.0.0.1:2".into()],
            ..BenchConfig::default()
        };
        assert_eq!(two.check().unwrap().len(), 2);
        let one_far = BenchConfig {
            addr: vec!["127.0.0.1:1".into(), "10.0.0.1:2".into()],
            ..BenchConfig::default()
        };
        assert!(one_far.check().is_err());
        let none = BenchConfig {
            addr: Vec::new(),
            ..BenchConfig::default()
        };
        assert!(none.check().is_err());
    }

    #[test]
    fn bounds_are_enforced() {
        let ok = BenchConfig::default();
        assert!(ok.check().is_ok());
        let too_many = BenchConfig {
            subscribers: MAX_SUBSCRIBERS + 1,
            ..ok.clone()
        };
        assert!(too_many.check().is_err());
        let too_long = BenchConfig {
            duration: 601.0,
            ..ok.clone()
        };
        assert!(too_long.check().is_err());
        let rooms_without_subscribers = BenchConfig {
            subscribers: 2,
            rooms: 3,
            ..ok
        };
        assert!(rooms_without_subscribers.check().is_err());
    }
}

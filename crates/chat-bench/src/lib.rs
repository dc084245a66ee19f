//! `chat-bench`: a load generator for the chat server's fan-out, and the yardstick it is
//! judged by. A library so the smoke test drives exactly what the binary runs.
//!
//! One run: `config` (what to do, loopback only, bounded) -> `rooms` (created by a
//! signed-in session, as the server wants) -> `run` (connect the
//! `subscriber`s, start the `sender`s, drain) -> `report`. Each subscriber reads its
//! stream with `http1` + `wire` (native gRPC: tonic with `raw_codec`), judges it with
//! `checker` against the `stamp` in each text and times it into `latency`; `tally` and
//! `progress` show the run going; `baseline` is the same traffic through a minimal
//! raw-TCP fan-out; `proc_stats` reads what the server spent, `fd_limit` makes room for
//! the sockets.

pub mod baseline;
pub mod checker;
pub mod config;
pub mod fd_limit;
pub mod http1;
pub mod latency;
pub mod proc_stats;
pub mod progress;
pub mod raw_codec;
pub mod report;
pub mod rooms;
pub mod run;
pub mod sender;
pub mod stamp;
pub mod subscriber;
pub mod tally;
pub mod wire;

use std::path::Path;

pub use config::{BenchConfig, Transport};
pub use report::{Measurement, Report};

use run::Target;
use subscriber::Link;

/// Sockets the bench needs besides the subscribers' (senders, the runtime, stdio).
const SPARE_FDS: u64 = 64;

/// Runs the configured load against the chat server, then, with `--baseline`, the same
/// load against the raw-TCP baseline started from `baseline_exe` (this binary).
pub async fn run(cfg: &BenchConfig, baseline_exe: Option<&Path>) -> Result<Report, String> {
    let addrs = cfg.check()?;
    let fds = fd_limit::raise();
    if fds < cfg.subscribers as u64 + cfg.senders as u64 + SPARE_FDS {
        return Err(format!(
            "{} subscribers need more open files than the limit of {fds}; raise it (ulimit -n)",
            cfg.subscribers
        ));
    }
    let chat = Target {
        name: match cfg.transport {
            Transport::GrpcWeb => "chat-server, grpc-web/HTTP1.1".into(),
            Transport::Native => "chat-server, native gRPC/HTTP2".into(),
        },
        addrs: addrs.clone(),
        link: match cfg.transport {
            Transport::GrpcWeb => Link::GrpcWeb,
            Transport::Native => Link::Native,
        },
        pids: cfg.server_pid.clone(),
    };
    rooms::create(addrs[0], &room_names(cfg.rooms)).await?;
    let main = run::measure(cfg, &chat, &room_names(cfg.rooms)).await?;
    let baseline = match (cfg.baseline && cfg.senders > 0, baseline_exe) {
        (false, _) => None,
        (true, None) => return Err("--baseline needs the chat-bench executable".into()),
        (true, Some(exe)) => {
            let process = baseline::BaselineProcess::spawn(exe).await?;
            let target = Target {
                name: "baseline, raw TCP coalescing".into(),
                addrs: vec![process.addr],
                link: Link::Raw,
                pids: vec![process.pid],
            };
            let measured = run::measure(cfg, &target, &room_names(cfg.rooms)).await;
            process.stop().await;
            Some(measured?)
        }
    };
    Ok(Report { main, baseline })
}

/// The same names every run (`bench-0`, `bench-1`, ...): the server keeps rooms (and caps
/// how many exist), so fresh names per run would use them up on a long-lived server.
/// Reusing them is safe: subscribers start live-only (after_id 0), so nothing from an
/// earlier run reaches them. Two runs at once against one server would mix, though.
fn room_names(rooms: usize) -> Vec<String> {
    (0..rooms).map(|i| format!("bench-{i}")).collect()
}

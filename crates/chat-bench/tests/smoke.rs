//! A short run of the load generator against a real chat server started in-process, over
//! each link, so the tool the benchmark figures come from is itself known to count right:
//! every message accepted must reach every subscriber of its room once, in order.
//! Not a benchmark: a few hundred messages, no figure is asserted but correctness.
use std::{net::SocketAddr, path::Path};

use chat_bench::{BenchConfig, Measurement, Transport};
use chat_server::{app, Config, Shutdown};
use tokio::net::TcpListener;

const MESSAGES: u64 = 300;
const SUBSCRIBERS: usize = 6;
const ROOMS: usize = 2;

/// A server in this process; its database goes with the `DbFiles`.
async fn start_server() -> (SocketAddr, Shutdown, DbFiles) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = Shutdown::new();
    let config = Config::for_tests();
    let db = DbFiles(
        config
            .db
            .sqlite_path()
            .expect("a test database file")
            .to_owned(),
    );
    tokio::spawn(app::serve(listener, config, shutdown.clone()));
    (addr, shutdown, db)
}

/// A test server's database file, removed with its WAL files when the test ends.
struct DbFiles(std::path::PathBuf);

impl Drop for DbFiles {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

fn small_run(addr: SocketAddr, transport: Transport) -> BenchConfig {
    BenchConfig {
        addr: vec![addr.to_string()],
        transport,
        subscribers: SUBSCRIBERS,
        rooms: ROOMS,
        senders: 2,
        window: 16,
        messages: MESSAGES,
        duration: 60.0,
        drain_ms: 20_000,
        settle_ms: 0,
        // The server runs in this process, so this exercises the /proc readings too.
        server_pid: vec![std::process::id()],
        quiet: true,
        ..BenchConfig::default()
    }
}

fn assert_every_delivery(m: &Measurement) {
    assert_eq!((m.sent, m.send_errors), (MESSAGES, 0), "{m}");
    // Messages alternate over the rooms; each reaches that room's subscribers.
    let owed = MESSAGES * (SUBSCRIBERS / ROOMS) as u64;
    assert_eq!(m.expected, owed, "{m}");
    assert_eq!(m.received, owed, "{m}");
    assert!(m.is_clean(), "{m}");
    assert_eq!(m.latency.map(|l| l.count), Some(owed), "{m}");
    assert!(m.server_cpu_s.is_some() && m.rss_per_subscriber_kib().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_web_subscribers_get_every_message_once_in_order() {
    let (addr, shutdown, _db) = start_server().await;
    let report = chat_bench::run(&small_run(addr, Transport::GrpcWeb), None)
        .await
        .unwrap();
    assert_every_delivery(&report.main);
    assert!(report.baseline.is_none());
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_subscribers_get_every_message_once_in_order() {
    let (addr, shutdown, _db) = start_server().await;
    let report = chat_bench::run(&small_run(addr, Transport::Native), None)
        .await
        .unwrap();
    assert_every_delivery(&report.main);
    shutdown.trigger();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_baseline_carries_the_same_traffic_and_gets_a_ratio() {
    let (addr, shutdown, _db) = start_server().await;
    let cfg = BenchConfig {
        baseline: true,
        ..small_run(addr, Transport::GrpcWeb)
    };
    let exe = Path::new(env!("CARGO_BIN_EXE_chat-bench"));
    let report = chat_bench::run(&cfg, Some(exe)).await.unwrap();
    assert_every_delivery(&report.main);
    let baseline = report.baseline.as_ref().expect("a baseline measurement");
    assert_every_delivery(baseline);
    assert!(report.ratio().is_some_and(|r| r > 0.0));
    assert!(report.to_string().contains("ours / baseline"));
    shutdown.trigger();
}

#[tokio::test]
async fn a_remote_target_is_refused_before_connecting() {
    let cfg = BenchConfig {
        addr: vec!["192.0.2.1:8080".into()],
        ..BenchConfig::default()
    };
    let err = chat_bench::run(&cfg, None).await.unwrap_err();
    assert!(err.contains("loopback"), "{err}");
}

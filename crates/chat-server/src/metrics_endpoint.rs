//! Prometheus metrics on a listener of their own (`--metrics-addr`), never the public port.
//!
//! Events are counted where they happen (commits, deliveries, refusals, connections)
//! through the `metrics` facade, a no-op until `install` runs, and once per batch, never
//! per message per subscriber. Everything the server already keeps count of (rooms,
//! sessions, open streams, messages committed, the database's size) is read when Prometheus
//! scrapes instead, so it costs nothing between scrapes.
use std::{
    io,
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::{
    connection_caps::ConnectionCaps, hub::RoomHub, sessions::Sessions, shutdown::Shutdown,
    stream_caps::StreamCaps,
};

// Counted where they happen.
pub const CONNECTIONS: &str = "chat_connections_total";
pub const CONNECTIONS_SERVING: &str = "chat_connections_serving";
pub const DELIVERIES: &str = "chat_deliveries_total";
pub const CUT_OFF: &str = "chat_subscribers_cut_off_total";
pub const REFUSALS: &str = "chat_refusals_total";
pub const COMMIT_BATCH_SIZE: &str = "chat_commit_batch_size";
pub const COMMIT_SECONDS: &str = "chat_commit_seconds";
// Read at scrape time.
const CONNECTIONS_OPEN: &str = "chat_connections_open";
const CONNECTIONS_REFUSED: &str = "chat_connections_refused_total";
const STREAMS_OPEN: &str = "chat_streams_open";
const SUBSCRIBERS: &str = "chat_subscribers";
const MEMBERS: &str = "chat_room_members";
const SESSIONS: &str = "chat_sessions";
const ROOMS: &str = "chat_rooms";
const RING_BYTES: &str = "chat_fanout_ring_bytes";
const MESSAGES_COMMITTED: &str = "chat_messages_committed_total";
const COMMITS: &str = "chat_commits_total";
const COMMITS_FAILED: &str = "chat_commits_failed_total";
const DB_BYTES: &str = "chat_db_bytes";

/// How often histogram samples are folded into their buckets: the exporter keeps raw
/// samples until then, so without it memory would grow with every commit nobody scraped.
const UPKEEP: Duration = Duration::from_secs(5);

/// Installs the process's metrics recorder, once, and returns its handle; later calls
/// return the same handle. Call it before the hub opens: the writer and every room's
/// ring take their handles when they are made, and a handle taken earlier records
/// nothing. The recorder is process-wide because the `metrics` facade is.
pub fn install() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = builder().build_recorder();
            let handle = recorder.handle();
            if let Err(err) = metrics::set_global_recorder(recorder) {
                tracing::error!(%err, "another metrics recorder is installed; /metrics will show nothing");
            }
            describe();
            handle
        })
        .clone()
}

fn builder() -> PrometheusBuilder {
    // Commits are a write and an fsync: tenths of a millisecond on a fast disk, tens on a
    // slow one. A batch holds at most MAX_BATCH (1024) messages.
    let seconds = [
        0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    ];
    let sizes = [
        1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
    ];
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(COMMIT_SECONDS.into()), &seconds)
        .and_then(|b| b.set_buckets_for_metric(Matcher::Full(COMMIT_BATCH_SIZE.into()), &sizes))
        .expect("bucket lists are not empty")
}

/// The `# HELP` lines; README.md ("Watching it") says the same.
fn describe() {
    describe_counter!(
        CONNECTIONS,
        "Connections that made a request, by the protocol of their first request (http1, h2)"
    );
    describe_gauge!(
        CONNECTIONS_SERVING,
        "Open connections that made a request, by protocol (http1, h2)"
    );
    describe_gauge!(
        CONNECTIONS_OPEN,
        "Open connections, whether or not they made a request yet"
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed on accept for being over --max-connections or --max-connections-per-ip"
    );
    describe_gauge!(
        STREAMS_OPEN,
        "Subscribe and Broadcast streams open, as the stream caps count them"
    );
    describe_gauge!(
        SUBSCRIBERS,
        "Readers of rooms' fan-out rings: one per open Subscribe or Broadcast stream"
    );
    describe_gauge!(
        MEMBERS,
        "Signed-in names present in some room, once per room"
    );
    describe_gauge!(SESSIONS, "Live sessions, guests and accounts");
    describe_gauge!(ROOMS, "Rooms in memory");
    describe_gauge!(
        RING_BYTES,
        Unit::Bytes,
        "Bytes held by all rooms' fan-out rings"
    );
    describe_counter!(
        MESSAGES_COMMITTED,
        "Messages committed to the database since the server started"
    );
    describe_counter!(
        COMMITS,
        "Transactions the store's writer committed (group commits)"
    );
    describe_counter!(
        COMMITS_FAILED,
        "Transactions that failed; every write in them was refused"
    );
    describe_histogram!(
        COMMIT_BATCH_SIZE,
        "Writes (messages, room creations and deletions) per committed transaction"
    );
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time to write and commit one transaction, fsync included"
    );
    describe_counter!(DELIVERIES, "Chat messages handed from a room's fan-out ring to Subscribe and Broadcast streams (catch-up reads from the database not included)");
    describe_counter!(CUT_OFF, "Subscribers cut off: lagged (fell a whole ring behind; told ABORTED) or stalled (stopped reading; stream ended)");
    describe_counter!(
        REFUSALS,
        "Calls and streams answered with an error status, by gRPC code"
    );
    describe_gauge!(
        DB_BYTES,
        Unit::Bytes,
        "Size of the SQLite database file and its write-ahead log"
    );
}

/// What the scrape reads, besides the recorder.
#[derive(Clone)]
pub struct Sources {
    pub hub: RoomHub,
    pub sessions: Sessions,
    pub streams: StreamCaps,
    pub connections: ConnectionCaps,
    /// The SQLite file; `None` on PostgreSQL, whose size is the database server's to report.
    pub db: Option<PathBuf>,
}

#[derive(Clone)]
struct Scrape {
    handle: PrometheusHandle,
    sources: Sources,
}

/// Serves `GET /metrics` on `listener` until `shutdown`, and keeps the histograms folded.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    sources: Sources,
    shutdown: Shutdown,
) -> io::Result<()> {
    {
        let (handle, mut ticks) = (handle.clone(), shutdown.every(UPKEEP));
        tokio::spawn(async move {
            while ticks.next().await {
                handle.run_upkeep();
            }
        });
    }
    let app = Router::new()
        .route("/metrics", get(scrape))
        .with_state(Scrape { handle, sources });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.wait_owned())
        .await
}

async fn scrape(State(scrape): State<Scrape>) -> impl IntoResponse {
    scrape.sources.sample();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        scrape.handle.render(),
    )
}

impl Sources {
    /// Copies the server's own counts into the recorder.
    fn sample(&self) {
        let memory = self.hub.memory_stats();
        gauge!(ROOMS).set(memory.rooms as f64);
        gauge!(SUBSCRIBERS).set(memory.readers as f64);
        gauge!(MEMBERS).set(memory.members as f64);
        gauge!(RING_BYTES).set(memory.ring_bytes as f64);
        let store = self.hub.store().stats();
        counter!(MESSAGES_COMMITTED).absolute(store.messages);
        counter!(COMMITS).absolute(store.batches);
        counter!(COMMITS_FAILED).absolute(store.failed_batches);
        gauge!(SESSIONS).set(self.sessions.len() as f64);
        gauge!(STREAMS_OPEN).set(self.streams.open() as f64);
        gauge!(CONNECTIONS_OPEN).set(self.connections.open() as f64);
        counter!(CONNECTIONS_REFUSED).absolute(self.connections.refused());
        if let Some(db) = &self.db {
            gauge!(DB_BYTES).set(db_bytes(db) as f64);
        }
    }
}

/// The database file plus its write-ahead log (`PATH-wal`), which holds recent commits
/// until a checkpoint copies them in; 0 for a file that is not there.
fn db_bytes(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db, Path::new(&wal)]
        .iter()
        .filter_map(|file| std::fs::metadata(file).ok())
        .map(|meta| meta.len())
        .sum()
}

/// One connection's place in `chat_connections_*{protocol}`: counted at its first
/// request, when hyper has told HTTP/1.1 from HTTP/2, and no longer serving once dropped
/// (with the connection's service). Later requests cost an atomic load.
#[derive(Default)]
pub struct ConnectionProtocol(OnceLock<Gauge>);

impl ConnectionProtocol {
    pub fn request(&self, version: http::Version) {
        self.0.get_or_init(|| {
            let protocol = if version >= http::Version::HTTP_2 {
                "h2"
            } else {
                "http1"
            };
            counter!(CONNECTIONS, "protocol" => protocol).increment(1);
            let serving = gauge!(CONNECTIONS_SERVING, "protocol" => protocol);
            serving.increment(1.0);
            serving
        });
    }
}

impl Drop for ConnectionProtocol {
    fn drop(&mut self) {
        if let Some(serving) = self.0.get() {
            serving.decrement(1.0);
        }
    }
}

/// A gRPC code as its name in the protocol's spec (`RESOURCE_EXHAUSTED`), the label of
/// `chat_refusals_total`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_size_counts_the_write_ahead_log() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("chat.db");
        assert_eq!(db_bytes(&db), 0);
        std::fs::write(&db, [0; 100]).unwrap();
        std::fs::write(dir.path().join("chat.db-wal"), [0; 20]).unwrap();
        assert_eq!(db_bytes(&db), 120);
    }
}

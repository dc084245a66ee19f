//! Every knob of the server in one struct, parsed by clap with env-var fallbacks, and
//! passed down explicitly: nothing reads the environment anywhere else.
use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use clap::Parser;

use crate::{
    address_budgets::BudgetSettings,
    limits::Limits,
    store::{Database, Durability},
    tls::TlsFiles,
};

#[derive(Debug, Clone, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "Real-time chat over gRPC and grpc-web"
)]
pub struct Config {
    /// Address to listen on (native gRPC, grpc-web and static files share it).
    #[arg(long, env = "CHAT_ADDR", default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,

    /// Directory holding the built frontend (trunk's dist/). Served at `/`.
    #[arg(long, env = "CHAT_STATIC_DIR", default_value = "dist")]
    pub static_dir: Option<PathBuf>,

    /// Origins allowed to call the API from another site (CORS). Repeat or separate with
    /// commas; `*` allows any origin. Default: none, i.e. same origin only.
    #[arg(
        long = "allowed-origin",
        env = "CHAT_ALLOWED_ORIGINS",
        value_delimiter = ','
    )]
    pub allowed_origins: Vec<String>,

    /// Where every room, message, account and session is kept: a SQLite file (created if
    /// missing; WAL mode, so expect PATH-wal and PATH-shm beside it), or a PostgreSQL
    /// database given as a `postgres://user:password@host:port/dbname` URL, which several
    /// servers can share (the database must exist; its tables are created at start).
    #[arg(long, env = "CHAT_DB", default_value = "chat.db", global = true)]
    pub db: Database,

    /// When a SQLite commit counts as durable: `full` survives power loss (fsync per group
    /// commit), `normal` survives a crash or SIGKILL of the server but not of the machine.
    /// PostgreSQL commits as its own `synchronous_commit` says.
    #[arg(long, env = "CHAT_DB_SYNC", default_value = "full")]
    pub db_sync: DbSync,

    /// Events (messages, presence, typing) a subscriber may fall behind before it is cut
    /// off; it then resumes from its last id. Each room keeps this many, shared by all its
    /// subscribers, so a stalled client holds no memory of its own.
    #[arg(long, env = "CHAT_SUBSCRIBER_QUEUE", default_value_t = 4096)]
    pub subscriber_queue: usize,

    /// Memory all rooms' fan-out rings may hold together, in MiB. One room may hold an
    /// eighth of it; half of it is split evenly over `--max-rooms` and
    /// `--max-conversations` as each room's (and conversation's) floor,
    /// which other rooms' traffic never takes. A ring nobody reads holds nothing.
    #[arg(long, env = "CHAT_FANOUT_MEMORY_MB", default_value_t = 256)]
    pub fanout_memory_mb: usize,

    /// Store reads (History pages, catch-up pages) running at once on blocking threads;
    /// more wait their turn. 0 = twice the number of CPU cores.
    #[arg(long, env = "CHAT_MAX_STORE_READS", default_value_t = 0)]
    pub max_store_reads: usize,

    /// A subscriber cut off for falling a whole queue behind that still has not read for
    /// this long has its connection closed, freeing its socket buffers. One that reads
    /// in time gets the cut-off status and resumes.
    #[arg(long, env = "CHAT_STALL_TIMEOUT_MS", default_value_t = 10_000)]
    pub stall_timeout_ms: u64,

    /// Most rooms that may exist; creating one more is refused (RESOURCE_EXHAUSTED).
    #[arg(long, env = "CHAT_MAX_ROOMS", default_value_t = 1000)]
    pub max_rooms: usize,

    /// Most direct-message conversations that may exist, besides the rooms; starting one
    /// more is refused (RESOURCE_EXHAUSTED). Each has a fan-out ring like a room's.
    #[arg(long, env = "CHAT_MAX_CONVERSATIONS", default_value_t = 1000)]
    pub max_conversations: usize,

    /// Rooms one session, and one address, may create per hour (all at once if they
    /// like, then spread over the hour); 0 = unlimited. Only signed-in people create rooms.
    #[arg(long, env = "CHAT_MAX_NEW_ROOMS_PER_HOUR", default_value_t = 5)]
    pub max_new_rooms_per_hour: u32,

    /// A room that never got a message and that nobody has open is dropped (from memory
    /// and the database) once it is this old; `general` never is.
    #[arg(long, env = "CHAT_EMPTY_ROOM_TTL_SECS", default_value_t = 600)]
    pub empty_room_ttl_secs: u64,

    /// Messages per second one session (or one address, shared by every name it posts
    /// under without a token) may post, on average; 0 = unlimited (benchmarks).
    #[arg(long, env = "CHAT_MAX_MESSAGES_PER_SEC", default_value_t = 10)]
    pub max_messages_per_sec: u32,

    /// Messages a sender may post in a burst above that rate.
    #[arg(long, env = "CHAT_MESSAGE_BURST", default_value_t = 20)]
    pub message_burst: u32,

    /// Streams (Subscribe, Broadcast) one session may have open at once.
    #[arg(long, env = "CHAT_MAX_STREAMS_PER_SESSION", default_value_t = 8)]
    pub max_streams_per_session: usize,

    /// A guest session with no call and no open stream for this long ends, freeing its
    /// name.
    #[arg(long, env = "CHAT_SESSION_IDLE_SECS", default_value_t = 1800)]
    pub session_idle_secs: u64,

    /// An account's session with no call and no open stream for this long ends (the
    /// person signs in again). Default: 30 days.
    #[arg(long, env = "CHAT_ACCOUNT_SESSION_IDLE_SECS", default_value_t = 30 * 24 * 3600)]
    pub account_session_idle_secs: u64,

    /// Most live sessions (guests and accounts together); Join, SignIn and Register past
    /// it are refused (RESOURCE_EXHAUSTED) until sessions idle out.
    #[arg(long, env = "CHAT_MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,

    /// A Subscribe stream quiet for this long gets a heartbeat, so clients can tell a quiet
    /// room from a dead connection and idle proxies keep it open. 0 turns them off.
    #[arg(long, env = "CHAT_HEARTBEAT_MS", default_value_t = 15_000)]
    pub heartbeat_ms: u32,

    /// Reverse proxies (CIDRs, e.g. 127.0.0.1/32 or 10.0.0.0/8) whose X-Forwarded-For /
    /// Forwarded headers name the client's address. Requests from anywhere else are
    /// accounted to their TCP peer, whatever their headers say. Default: none.
    #[arg(
        long = "trusted-proxy",
        env = "CHAT_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,

    /// Join, Register and SignIn calls one address may make per minute, on average; 0 =
    /// unlimited. Stops one script from holding every common name.
    #[arg(long, env = "CHAT_MAX_SIGN_INS_PER_MIN", default_value_t = 10)]
    pub max_sign_ins_per_min: u32,

    /// Joins and sign-ins an address may make back to back before the per-minute rate
    /// applies.
    #[arg(long, env = "CHAT_SIGN_IN_BURST", default_value_t = 5)]
    pub sign_in_burst: u32,

    /// Connections the server holds at once; more are closed as soon as they are
    /// accepted. 0 = no cap.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Connections one address (the TCP peer: behind a proxy, the proxy) may hold at
    /// once; more are closed as soon as they are accepted. 0 = no cap.
    #[arg(long, env = "CHAT_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,

    /// Subscribe and Broadcast streams the server holds open at once, token-less ones
    /// included; more are refused (RESOURCE_EXHAUSTED) until some close. 0 = no cap.
    #[arg(long, env = "CHAT_MAX_STREAMS", default_value_t = 10_000)]
    pub max_streams: usize,

    /// Subscribe and Broadcast streams one client address (as `--trusted-proxy` decides
    /// it) may hold open at once, whatever sessions they use or none; 0 = no cap.
    #[arg(long, env = "CHAT_MAX_STREAMS_PER_IP", default_value_t = 256)]
    pub max_streams_per_ip: usize,

    /// An HTTP/1.1 client gets this long to send a request's headers, counted from when
    /// the connection starts waiting for them (so it also closes idle keep-alive
    /// connections). Slowloris connections end this quickly.
    #[arg(long, env = "CHAT_HEADER_READ_TIMEOUT_MS", default_value_t = 5_000)]
    pub header_read_timeout_ms: u64,

    /// A connection (HTTP/1.1 or HTTP/2) with no request in flight for this long is
    /// closed. An open stream is a request in flight, so streams are never cut by it.
    #[arg(long, env = "CHAT_IDLE_TIMEOUT_SECS", default_value_t = 60)]
    pub idle_timeout_secs: u64,

    /// Largest accepted request message, in bytes; bigger frames are refused.
    #[arg(long, env = "CHAT_MAX_REQUEST_BYTES", default_value_t = 16 * 1024)]
    pub max_request_bytes: usize,

    /// Where to serve Prometheus metrics (`GET /metrics`), on a listener of their own;
    /// keep it private (loopback, or a network only the scraper reaches). Default: off.
    #[arg(long, env = "CHAT_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Serve TLS on `--addr` with this certificate chain (PEM, the server's own
    /// certificate first), so browsers get HTTP/2 (ALPN offers h2 and http/1.1). Needs
    /// `--tls-key`. Read again on SIGHUP.
    #[arg(long, env = "CHAT_TLS_CERT", value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key of `--tls-cert` (PEM). Needs `--tls-cert`.
    #[arg(long, env = "CHAT_TLS_KEY", value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// NATS (`nats://host:port`) joining this server to the others serving the same
    /// PostgreSQL database: they hear each other's messages, presence, typing and ended
    /// sessions through it. Several servers on one database need it; one does not.
    #[arg(long, env = "CHAT_NATS")]
    pub nats: Option<String>,

    /// How log lines are written to stderr: `text` for people, `json` (one object per
    /// line) for log shippers.
    #[arg(long, env = "CHAT_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DbSync {
    Full,
    Normal,
}

impl From<DbSync> for Durability {
    fn from(sync: DbSync) -> Self {
        match sync {
            DbSync::Full => Durability::Full,
            DbSync::Normal => Durability::Normal,
        }
    }
}

impl Config {
    /// Defaults for tests and embedding: loopback on an OS-chosen port, no static files,
    /// and a fresh database file of its own under the system temp dir.
    pub fn for_tests() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let db = std::env::temp_dir().join(format!(
            "chat-test-{}-{}-{}.db",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ));
        Config {
            static_dir: None,
            db: Database::Sqlite(db),
            // Tests post hundreds of messages as one name; the rate limit has tests of its own.
            ..Config::parse_from([
                "chat-server",
                "--addr",
                "127.0.0.1:0",
                "--db-sync",
                "normal",
                "--max-messages-per-sec",
                "0",
                // Tests join many names and open many rooms from one address; these
                // budgets have tests of their own.
                "--max-sign-ins-per-min",
                "0",
                "--max-new-rooms-per-hour",
                "0",
            ])
        }
    }

    pub fn budget_settings(&self) -> BudgetSettings {
        BudgetSettings {
            sign_ins_per_min: self.max_sign_ins_per_min,
            sign_in_burst: self.sign_in_burst,
            anonymous_messages_per_sec: self.max_messages_per_sec,
            anonymous_message_burst: self.message_burst,
        }
    }

    /// The TLS files, when both flags are given (clap refuses one without the other).
    pub fn tls_files(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// `--max-store-reads`, with 0 resolved to twice the cores.
    pub fn store_reads(&self) -> usize {
        match self.max_store_reads {
            0 => 2 * std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_messages_per_sec: self.max_messages_per_sec,
            message_burst: self.message_burst,
            max_streams_per_session: self.max_streams_per_session,
            session_idle: Duration::from_secs(self.session_idle_secs),
            account_session_idle: Duration::from_secs(self.account_session_idle_secs),
            max_sessions: self.max_sessions,
            ..Limits::default()
        }
    }
}

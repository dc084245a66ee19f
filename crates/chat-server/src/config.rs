//! Every knob of the server in one struct, parsed by clap with env-var fallbacks, and
//! passed down explicitly: nothing reads the environment anywhere else.
use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

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

    /// Messages kept in memory per room, for History and for resuming subscribers.
    #[arg(long, env = "CHAT_HISTORY_PER_ROOM", default_value_t = 1000)]
    pub history_per_room: usize,

    /// Messages a subscriber may fall behind before it is cut off (it then resumes from
    /// its last id). Bounds the memory a stalled client can hold.
    #[arg(long, env = "CHAT_SUBSCRIBER_QUEUE", default_value_t = 1024)]
    pub subscriber_queue: usize,

    /// A Subscribe stream quiet for this long gets a heartbeat, so clients can tell a quiet
    /// room from a dead connection and idle proxies keep it open. 0 turns them off.
    #[arg(long, env = "CHAT_HEARTBEAT_MS", default_value_t = 15_000)]
    pub heartbeat_ms: u32,

    /// Largest accepted request message, in bytes; bigger frames are refused.
    #[arg(long, env = "CHAT_MAX_REQUEST_BYTES", default_value_t = 16 * 1024)]
    pub max_request_bytes: usize,
}

impl Config {
    /// Defaults for tests and embedding: loopback on an OS-chosen port, no static files.
    pub fn for_tests() -> Self {
        Config {
            static_dir: None,
            ..Config::parse_from(["chat-server", "--addr", "127.0.0.1:0"])
        }
    }
}

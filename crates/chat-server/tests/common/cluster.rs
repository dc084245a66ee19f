//! Several in-process servers on one PostgreSQL database of their own and one private
//! NATS, as `--db postgres://... --nats nats://...` joins them.
use chat_server::{store::Database, Config};

use super::{nats::Nats, pg, TestServer};

pub struct Cluster {
    pub servers: Vec<TestServer>,
    pub nats: Nats,
    // Last: the servers' connections go before their database does.
    _db: pg::Database,
}

pub async fn cluster(n: usize) -> Cluster {
    cluster_with(n, Config::for_tests).await
}

/// `cluster` with each server's config from `config` (then given the shared database and
/// NATS).
pub async fn cluster_with(n: usize, config: impl Fn() -> Config) -> Cluster {
    let nats = Nats::start();
    let db = pg::database();
    let mut servers = Vec::new();
    for _ in 0..n {
        let mut config = config();
        config.db = db.url.parse::<Database>().unwrap();
        config.nats = Some(nats.url());
        servers.push(TestServer::start_with(config).await);
    }
    Cluster {
        servers,
        nats,
        _db: db,
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for server in &self.servers {
            server.shutdown.trigger();
        }
    }
}

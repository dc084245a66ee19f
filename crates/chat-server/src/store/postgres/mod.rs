//! PostgreSQL, the store several servers share (`--db postgres://...`).
//!
//! The writer is a tokio task batching like SQLite's thread, with one difference that
//! makes sharing safe: a room's ids come from its counter row (`rooms.last_id`), advanced
//! inside the inserting transaction, whose row lock is held until commit. So ids are
//! strictly increasing per room and commit in id order, whichever server inserts. Every
//! connection comes from one pool (deadpool), which drops broken connections and makes new
//! ones, so the store recovers by itself once the database is back; meanwhile requests
//! fail with `StoreError::Unreachable`. No TLS to the database (plain connections).
use std::{sync::Arc, time::Duration};

use deadpool_postgres::{Manager, ManagerConfig, Object, RecyclingMethod, Runtime};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{error::SqlState, NoTls};

use super::{Command, Counters, OnCommit, StoreError, StoredRoom};

pub(super) mod accounts;
mod changes;
pub(super) mod reader;
pub(super) mod rooms;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

pub use schema::VERSION as SCHEMA_VERSION;

/// How long making a new connection may take before the request fails as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a request waits for a free pooled connection.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// Pooled connections beyond the reads': the writer's and the accounts'.
const SPARE_CONNECTIONS: usize = 2;

/// The connection pool; reads take at most `max_reads` of its connections, so the
/// writer and the accounts always find one. Cheap to clone.
#[derive(Clone)]
pub struct Pool {
    pool: deadpool_postgres::Pool,
    reads: Arc<Semaphore>,
}

impl Pool {
    /// A connection for a write.
    async fn get(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// A connection for a read, once one of the read permits is free.
    async fn read(&self) -> Result<(OwnedSemaphorePermit, Object), StoreError> {
        let permit = Arc::clone(&self.reads)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        Ok((permit, self.get().await?))
    }
}

/// The opened database, its writer running.
pub(super) struct Opened {
    pub queue: mpsc::UnboundedSender<Command>,
    pub pool: Pool,
    pub epoch: u64,
    pub rooms: Vec<StoredRoom>,
}

/// Connects, brings the schema to this version, reads the epoch and the rooms, and starts
/// the writer task.
pub(super) async fn open(
    url: &str,
    max_reads: usize,
    on_commit: OnCommit,
    counters: &Arc<Counters>,
) -> Result<Opened, StoreError> {
    let shown = super::Database::Postgres(url.to_owned()).to_string();
    let failed = |reason: String| StoreError::PgOpen {
        database: shown.clone(),
        reason,
    };
    let mut config: tokio_postgres::Config = url.parse().map_err(|err| failed(format!("{err}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("chat-server");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // Checks only that the connection is still open: cheap, and a connection the
            // server closed (a restart) is replaced before anyone uses it.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let max_reads = max_reads.max(1);
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(max_reads + SPARE_CONNECTIONS)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(WAIT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|err| failed(err.to_string()))?;
    let pool = Pool {
        pool,
        reads: Arc::new(Semaphore::new(max_reads)),
    };
    let (epoch, rooms) = schema::migrate(&pool).await.map_err(|err| match err {
        newer @ StoreError::PgNewerSchema(_) => newer,
        err => failed(err.to_string()),
    })?;
    let (queue, commands) = mpsc::unbounded_channel();
    let writer = writer::Writer::new(pool.clone(), on_commit, Arc::clone(counters));
    tokio::spawn(writer.run(commands));
    Ok(Opened {
        queue,
        pool,
        epoch,
        rooms,
    })
}

/// Whether a round trip to the database succeeds within `timeout`.
pub(super) async fn reachable(pool: &Pool, timeout: Duration) -> bool {
    let probe = async {
        let conn = pool.get().await?;
        conn.simple_query("SELECT 1").await.map_err(error)
    };
    matches!(tokio::time::timeout(timeout, probe).await, Ok(Ok(_)))
}

/// A statement's error: refused by the database (`Postgres`), or the database not there
/// to refuse it (`Unreachable`: no connection, connection lost, or shutting down).
fn error(err: tokio_postgres::Error) -> StoreError {
    let lost = match err.code() {
        None => true,
        Some(code) => {
            let class = &code.code()[..2];
            // 08: connection exception; 57: the server is shutting down or restarting.
            class == "08" || class == "57" || *code == SqlState::TOO_MANY_CONNECTIONS
        }
    };
    if lost {
        StoreError::Unreachable(err.to_string().into())
    } else {
        StoreError::Postgres(Arc::new(err))
    }
}

fn pool_error(err: deadpool_postgres::PoolError) -> StoreError {
    match err {
        deadpool_postgres::PoolError::Backend(err) => error(err),
        err => StoreError::Unreachable(err.to_string().into()),
    }
}

/// Ids and times are BIGINT: the protocol's u64 ids never pass i64::MAX in practice,
/// and a bound past it is clamped, which changes no answer.
fn bound(id: u64) -> i64 {
    i64::try_from(id).unwrap_or(i64::MAX)
}

/// A page's "ids below this" bound: `before_id` 0 asks for the newest, so nothing bounds it.
fn before_bound(before_id: u64) -> i64 {
    match before_id {
        0 => i64::MAX,
        id => bound(id),
    }
}

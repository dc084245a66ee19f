//! SQLite, the embedded engine for one server: a file beside it, nothing to run.
//!
//! One writer thread owns the messages' write connection and commits whatever is queued
//! as one transaction (group commit): under load one disk sync covers many messages, so
//! durability does not cap throughput. Reads run on tokio's blocking pool over their own
//! connections, a bounded number at a time; WAL lets them proceed beside the writer.
//! Accounts and stored sessions (`accounts`) are written over a connection of their own.
use std::{
    path::Path,
    sync::{mpsc, Arc},
};

use super::{Command, Counters, Durability, OnCommit, StoreError, StoredRoom};

pub(super) mod accounts;
mod changes;
pub mod maintenance;
pub(super) mod reader;
mod schema;
pub(super) mod search;
#[cfg(test)]
mod search_tests;
#[cfg(test)]
mod tests;
mod writer;

pub(super) use reader::Readers;
pub use schema::VERSION as SCHEMA_VERSION;
use writer::Writer;

/// The opened database, its writer ready to run on a thread of its own.
pub(super) struct Opened {
    pub queue: mpsc::Sender<Command>,
    pub writer: (mpsc::Receiver<Command>, Writer),
    pub readers: Arc<Readers>,
    pub epoch: u64,
    pub rooms: Vec<StoredRoom>,
}

/// Opens (or creates, or upgrades) the database at `path`.
pub(super) fn open(
    path: &Path,
    durability: Durability,
    max_reads: usize,
    on_commit: OnCommit,
    counters: &Arc<Counters>,
) -> Result<Opened, StoreError> {
    let opened = schema::open(path, durability)?;
    let (queue, commands) = mpsc::channel();
    let writer = Writer::new(opened.conn, &opened.rooms, on_commit, Arc::clone(counters));
    Ok(Opened {
        queue,
        writer: (commands, writer),
        readers: Arc::new(Readers::new(path, max_reads)),
        epoch: opened.epoch,
        rooms: opened.rooms,
    })
}

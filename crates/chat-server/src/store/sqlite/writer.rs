//! The writer thread: the only connection that writes, committing whatever is queued as
//! one transaction.
//!
//! A plain std thread, because SQLite blocks (a commit waits for the disk) and tokio's
//! workers must not. Group commit needs no timer: while one commit is on its way to disk
//! the next appends queue up, and the next transaction takes them all, so batches grow
//! exactly as fast as the load does and a lone message never waits for company.
use std::{
    collections::HashSet,
    panic::{self, AssertUnwindSafe},
    sync::{atomic::Ordering, mpsc, Arc},
    time::Instant,
};

use metrics::Histogram;
use rusqlite::{params, Connection};
use tokio::sync::oneshot;

use crate::metrics_endpoint::{COMMIT_BATCH_SIZE, COMMIT_SECONDS};
use crate::store::{
    display_form, Command, Committed, Counters, OnCommit, SentId, StoreError, StoredRoom, MAX_BATCH,
};

/// A queued write, kept with the append waiting for it.
enum Item {
    Message(
        Committed,
        Option<SentId>,
        oneshot::Sender<Result<Committed, StoreError>>,
    ),
    Room(String, i64, oneshot::Sender<Result<(), StoreError>>),
    Unroom(String, oneshot::Sender<Result<(), StoreError>>),
}

/// What ends a batch early, to run once the batch is committed.
enum After {
    Prune(i64, oneshot::Sender<Result<usize, StoreError>>),
    Close(oneshot::Sender<()>),
}

pub(in crate::store) struct Writer {
    conn: Connection,
    /// Rooms already in the `rooms` table, so a message costs no extra insert.
    known_rooms: HashSet<String>,
    on_commit: OnCommit,
    counters: Arc<Counters>,
    /// `chat_commit_batch_size` and `chat_commit_seconds`.
    batch_sizes: Histogram,
    commit_times: Histogram,
}

impl Writer {
    pub fn new(
        conn: Connection,
        rooms: &[StoredRoom],
        on_commit: OnCommit,
        counters: Arc<Counters>,
    ) -> Self {
        Writer {
            conn,
            known_rooms: rooms.iter().map(|room| room.name.clone()).collect(),
            on_commit,
            counters,
            batch_sizes: metrics::histogram!(COMMIT_BATCH_SIZE),
            commit_times: metrics::histogram!(COMMIT_SECONDS),
        }
    }

    /// Runs until `Close` or until every handle is gone; either way everything queued
    /// before that is committed first (a channel delivers what it holds before it ends).
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Ok(first) = commands.recv() {
            let mut next = Some(first);
            let mut after = None;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append(mut msg, sent, done) => {
                        self.counters.queued.fetch_sub(1, Ordering::AcqRel);
                        // Callers usually fill it already; this thread is the one serial
                        // step of every post, so it formats only what is missing.
                        if msg.message.is_empty() {
                            msg.message = display_form(&msg.username, &msg.text);
                        }
                        batch.push(Item::Message(Arc::new(msg), sent, done));
                    }
                    Command::CreateRoom(name, at, done) => batch.push(Item::Room(name, at, done)),
                    Command::DeleteEmptyRoom(name, done) => batch.push(Item::Unroom(name, done)),
                    Command::PruneSent(before_ms, done) => {
                        after = Some(After::Prune(before_ms, done));
                        break;
                    }
                    Command::Close(done) => {
                        after = Some(After::Close(done));
                        break;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = commands.try_recv().ok();
                }
            }
            if !batch.is_empty() {
                self.commit(&mut batch);
            }
            match after {
                Some(After::Prune(before_ms, done)) => {
                    let pruned = prune_sent(&mut self.conn, before_ms);
                    if let Err(err) = &pruned {
                        tracing::warn!(error = %err, "could not forget old sent ids; the next round tries again");
                    }
                    let _ = done.send(pruned.map_err(|err| StoreError::Sqlite(Arc::new(err))));
                }
                Some(After::Close(done)) => {
                    let _ = done.send(());
                    return;
                }
                None => {}
            }
        }
    }

    /// Writes `batch` as one transaction, tells `on_commit`, then answers every item:
    /// all succeed or all get the same error, and a failed batch is never fanned out.
    fn commit(&mut self, batch: &mut Vec<Item>) {
        let started = Instant::now();
        match write(&mut self.conn, &self.known_rooms, batch) {
            Ok((new_rooms, deleted)) => {
                self.commit_times.record(started.elapsed());
                self.batch_sizes.record(batch.len() as f64);
                self.known_rooms.extend(new_rooms);
                for name in &deleted {
                    self.known_rooms.remove(name);
                }
                let messages: Vec<Committed> = batch
                    .iter()
                    .filter_map(|item| match item {
                        Item::Message(msg, ..) => Some(Arc::clone(msg)),
                        Item::Room(..) | Item::Unroom(..) => None,
                    })
                    .collect();
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .messages
                    .fetch_add(messages.len() as u64, Ordering::Relaxed);
                if !messages.is_empty() {
                    // The messages are durable whatever the callback does; a panic in it
                    // must not take the writer, and every later message, down with it.
                    let fan_out = AssertUnwindSafe(|| (self.on_commit)(&messages));
                    if panic::catch_unwind(fan_out).is_err() {
                        tracing::error!("on_commit panicked; the batch is saved but some subscribers may have missed it");
                    }
                }
                for item in batch.drain(..) {
                    // A dropped receiver is a caller that stopped waiting; nothing to do.
                    match item {
                        Item::Message(msg, _, done) => drop(done.send(Ok(msg))),
                        Item::Room(_, _, done) | Item::Unroom(_, done) => drop(done.send(Ok(()))),
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, items = batch.len(), "could not commit a batch of messages; every one of them was refused");
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                let err = Arc::new(err);
                for item in batch.drain(..) {
                    let failed = StoreError::Sqlite(Arc::clone(&err));
                    match item {
                        Item::Message(_, _, done) => drop(done.send(Err(failed))),
                        Item::Room(_, _, done) | Item::Unroom(_, done) => {
                            drop(done.send(Err(failed)))
                        }
                    }
                }
            }
        }
    }
}

/// One transaction for the whole batch; returns the rooms it added and the ones it
/// deleted. Dropping the transaction on an error rolls it back, so a failed batch leaves
/// no trace.
fn write(
    conn: &mut Connection,
    known_rooms: &HashSet<String>,
    batch: &[Item],
) -> rusqlite::Result<(Vec<String>, Vec<String>)> {
    let tx = conn.transaction()?;
    let mut new_rooms: Vec<String> = Vec::new();
    let mut deleted: Vec<String> = Vec::new();
    {
        let mut insert_room = tx.prepare_cached(
            "INSERT OR IGNORE INTO rooms (name, created_at_ms, search_key)
             VALUES (?1, ?2, (SELECT COALESCE(MAX(search_key), 0) + 1 FROM rooms))",
        )?;
        let mut delete_room = tx.prepare_cached(
            "DELETE FROM rooms WHERE name = ?1
             AND NOT EXISTS (SELECT 1 FROM messages WHERE room = ?1)",
        )?;
        let mut insert_message = tx.prepare_cached(
            "INSERT INTO messages (room, id, username, text, sent_at_ms, guest, reply_to,
                change_kind, target, emoji, react_on)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        // OR REPLACE: a pair sent again after its record expired (but before pruning)
        // points at the new message. A live record is never replaced: the hub looks
        // first, one send per pair at a time (see `idempotency`).
        let mut insert_sent = tx.prepare_cached(
            "INSERT OR REPLACE INTO sent_ids (sender_key, client_msg_id, room, id, sent_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for item in batch {
            let (room, created_at_ms) = match item {
                // A message to a room not recorded yet records it as of the message.
                Item::Message(msg, ..) => (&msg.room, msg.sent_at_ms),
                Item::Room(name, at, _) => (name, *at),
                Item::Unroom(name, _) => {
                    if delete_room.execute([name])? > 0 {
                        new_rooms.retain(|r| r != name);
                        deleted.push(name.clone());
                    }
                    continue;
                }
            };
            // New rooms are rare, so a linear look through this batch's is cheap.
            let known = known_rooms.contains(room) && !deleted.contains(room);
            if !known && !new_rooms.contains(room) {
                insert_room.execute(params![room, created_at_ms])?;
                new_rooms.push(room.clone());
                deleted.retain(|r| r != room);
            }
            if let Item::Message(msg, sent, _) = item {
                // Plain INSERT: a repeated id is the caller's bug, and must fail loudly
                // rather than silently keep the older message.
                let change = msg.change.as_ref();
                insert_message.execute(params![
                    msg.room,
                    msg.id,
                    msg.username,
                    msg.text,
                    msg.sent_at_ms,
                    msg.guest,
                    msg.reply_to,
                    change.map(|c| c.kind),
                    change.map_or(0, |c| c.target_id),
                    change.map_or("", |c| c.emoji.as_str()),
                    change.is_some_and(|c| c.on),
                ])?;
                match change {
                    Some(change) => super::changes::apply(&tx, msg, change)?,
                    None => super::search::index(&tx, &msg.room, msg.id, &msg.text)?,
                }
                if let Some(sent) = sent {
                    insert_sent.execute(params![
                        sent.sender_key,
                        sent.client_msg_id,
                        msg.room,
                        msg.id,
                        msg.sent_at_ms
                    ])?;
                }
            }
        }
    }
    tx.commit()?;
    Ok((new_rooms, deleted))
}

/// Forgets the sent ids recorded before `before_ms`, in a transaction of its own (the
/// index on their time makes it a range delete); returns how many.
fn prune_sent(conn: &mut Connection, before_ms: i64) -> rusqlite::Result<usize> {
    let tx = conn.transaction()?;
    let pruned = tx.execute("DELETE FROM sent_ids WHERE sent_at_ms < ?1", [before_ms])?;
    tx.commit()?;
    Ok(pruned)
}

//! The writer task: commits whatever is queued as one transaction, taking each room's ids
//! from its counter row on the way.
//!
//! A batch is three statements whatever its size: advance the counters of the batch's
//! rooms (one upsert, rooms in name order, so two servers lock shared rooms in the same
//! order and never deadlock), insert the messages, record their sent ids. The counter
//! rows stay locked until commit, so another server's batch into the same room waits,
//! then continues from the new count: ids are gapless, and commit order is id order.
//! A batch that fails (the database gone, say) answers every append with the error and
//! the task goes on with the next one; nothing is retried behind the sender's back.
use std::{
    collections::BTreeMap,
    panic::{self, AssertUnwindSafe},
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use chat_proto::MessageResponse;
use metrics::Histogram;
use tokio::sync::{mpsc, oneshot};

use super::{error, Pool};
use crate::metrics_endpoint::{COMMIT_BATCH_SIZE, COMMIT_SECONDS};
use crate::store::{
    display_form, Command, Committed, Counters, OnCommit, SentId, StoreError, MAX_BATCH,
};

/// A queued write, kept with the append waiting for it. Nearly every item is a Message:
/// boxing it to shrink the rare others would cost an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Item {
    Message(
        MessageResponse,
        Option<SentId>,
        oneshot::Sender<Result<Committed, StoreError>>,
    ),
    Room(String, i64, oneshot::Sender<Result<(), StoreError>>),
}

/// What ends a batch early, to run once the batch is committed.
enum After {
    Unroom(String, oneshot::Sender<Result<(), StoreError>>),
    Prune(i64, oneshot::Sender<Result<usize, StoreError>>),
    Close(oneshot::Sender<()>),
}

/// A room's part of a batch: how many ids it takes, when it was created (if the batch
/// creates it), its newest message's time.
#[derive(Default)]
struct RoomTotals {
    count: i64,
    created_at_ms: i64,
    last_active_ms: i64,
}

pub(in crate::store) struct Writer {
    pool: Pool,
    on_commit: OnCommit,
    counters: Arc<Counters>,
    /// `chat_commit_batch_size` and `chat_commit_seconds`, as the SQLite writer's.
    batch_sizes: Histogram,
    commit_times: Histogram,
}

impl Writer {
    pub fn new(pool: Pool, on_commit: OnCommit, counters: Arc<Counters>) -> Self {
        Writer {
            pool,
            on_commit,
            counters,
            batch_sizes: metrics::histogram!(COMMIT_BATCH_SIZE),
            commit_times: metrics::histogram!(COMMIT_SECONDS),
        }
    }

    /// Runs until `Close` or until every handle is gone; either way everything queued
    /// before that is committed first.
    pub async fn run(self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        while let Some(first) = commands.recv().await {
            let mut next = Some(first);
            let mut after = None;
            while let Some(cmd) = next.take() {
                match cmd {
                    Command::Append(mut msg, sent, done) => {
                        self.counters.queued.fetch_sub(1, Ordering::AcqRel);
                        if msg.message.is_empty() {
                            msg.message = display_form(&msg.username, &msg.text);
                        }
                        batch.push(Item::Message(msg, sent, done));
                    }
                    Command::CreateRoom(name, at, done) => batch.push(Item::Room(name, at, done)),
                    // Runs alone, after what is queued ahead: a delete and a create of one
                    // room in one batch would otherwise need the SQLite writer's care.
                    Command::DeleteEmptyRoom(name, done) => {
                        after = Some(After::Unroom(name, done));
                        break;
                    }
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
                self.commit(&mut batch).await;
            }
            match after {
                Some(After::Unroom(name, done)) => {
                    let _ = done.send(self.delete_empty_room(&name).await);
                }
                Some(After::Prune(before_ms, done)) => {
                    let pruned = self.prune_sent(before_ms).await;
                    if let Err(err) = &pruned {
                        tracing::warn!(error = %err, "could not forget old sent ids; the next round tries again");
                    }
                    let _ = done.send(pruned);
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
    async fn commit(&self, batch: &mut Vec<Item>) {
        let started = Instant::now();
        match self.write(batch).await {
            Ok(()) => {
                self.commit_times.record(started.elapsed());
                self.batch_sizes.record(batch.len() as f64);
                let mut messages = Vec::with_capacity(batch.len());
                let mut answers = Vec::with_capacity(batch.len());
                for item in batch.drain(..) {
                    match item {
                        Item::Message(msg, _, done) => {
                            let msg = Arc::new(msg);
                            messages.push(Arc::clone(&msg));
                            answers.push(Ok((msg, done)));
                        }
                        Item::Room(_, _, done) => answers.push(Err(done)),
                    }
                }
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
                for answer in answers {
                    // A dropped receiver is a caller that stopped waiting; nothing to do.
                    match answer {
                        Ok((msg, done)) => drop(done.send(Ok(msg))),
                        Err(done) => drop(done.send(Ok(()))),
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, items = batch.len(), "could not commit a batch of messages; every one of them was refused");
                self.counters.failed_batches.fetch_add(1, Ordering::Relaxed);
                for item in batch.drain(..) {
                    match item {
                        Item::Message(_, _, done) => drop(done.send(Err(err.clone()))),
                        Item::Room(_, _, done) => drop(done.send(Err(err.clone()))),
                    }
                }
            }
        }
    }

    /// One transaction for the whole batch. Sets each message's id; dropping the
    /// transaction on an error rolls it back, so a failed batch leaves no trace (the ids
    /// it set are never seen: its messages are refused).
    async fn write(&self, batch: &mut [Item]) -> Result<(), StoreError> {
        // BTreeMap: the rooms in name order, the order their rows are locked in.
        let mut rooms: BTreeMap<&str, RoomTotals> = BTreeMap::new();
        for item in batch.iter() {
            match item {
                Item::Message(msg, ..) => {
                    let totals = rooms.entry(&msg.room).or_default();
                    if totals.count == 0 && totals.created_at_ms == 0 {
                        // A message to a room not recorded yet records it as of the message.
                        totals.created_at_ms = msg.sent_at_ms;
                    }
                    totals.count += 1;
                    totals.last_active_ms = totals.last_active_ms.max(msg.sent_at_ms);
                }
                Item::Room(name, at, _) => {
                    let totals = rooms.entry(name).or_default();
                    if totals.created_at_ms == 0 {
                        totals.created_at_ms = *at;
                    }
                    totals.last_active_ms = totals.last_active_ms.max(*at);
                }
            }
        }
        let names: Vec<&str> = rooms.keys().copied().collect();
        let created: Vec<i64> = rooms.values().map(|r| r.created_at_ms).collect();
        let counts: Vec<i64> = rooms.values().map(|r| r.count).collect();
        let active: Vec<i64> = rooms.values().map(|r| r.last_active_ms).collect();

        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(error)?;
        let advance = tx
            .prepare_cached(
                "INSERT INTO rooms (name, created_at_ms, last_id, last_active_ms)
                 SELECT * FROM UNNEST($1::text[], $2::int8[], $3::int8[], $4::int8[])
                 ON CONFLICT (name) DO UPDATE
                 SET last_id = rooms.last_id + EXCLUDED.last_id,
                     last_active_ms = GREATEST(rooms.last_active_ms, EXCLUDED.last_active_ms)
                 RETURNING name, last_id",
            )
            .await
            .map_err(error)?;
        let advanced = tx
            .query(&advance, &[&names, &created, &counts, &active])
            .await
            .map_err(error)?;
        // The next id to hand out per room: the new count minus what this batch takes.
        let mut next_id: BTreeMap<String, i64> = BTreeMap::new();
        for row in advanced {
            let name: String = row.get(0);
            let last: i64 = row.get(1);
            let count = rooms.get(name.as_str()).map_or(0, |r| r.count);
            next_id.insert(name, last - count + 1);
        }
        drop(rooms);

        // Ids first, then the columns, which borrow the messages.
        for item in batch.iter_mut() {
            if let Item::Message(msg, ..) = item {
                let next = next_id
                    .get_mut(&msg.room)
                    .expect("the upsert returns every room of the batch");
                msg.id = *next as u64;
                *next += 1;
            }
        }
        let mut m_room = Vec::new();
        let mut m_id = Vec::new();
        let mut m_user = Vec::new();
        let mut m_text = Vec::new();
        let mut m_at = Vec::new();
        let mut m_guest = Vec::new();
        let mut m_reply = Vec::new();
        let mut m_kind: Vec<Option<i32>> = Vec::new();
        let mut m_target = Vec::new();
        let mut m_emoji = Vec::new();
        let mut m_on = Vec::new();
        let (mut s_key, mut s_client, mut s_room, mut s_id, mut s_at) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for item in batch.iter() {
            let Item::Message(msg, sent, _) = item else {
                continue;
            };
            m_room.push(msg.room.as_str());
            m_id.push(msg.id as i64);
            m_user.push(msg.username.as_str());
            m_text.push(msg.text.as_str());
            m_at.push(msg.sent_at_ms);
            m_guest.push(msg.guest);
            m_reply.push(msg.reply_to as i64);
            let change = msg.change.as_ref();
            m_kind.push(change.map(|c| c.kind));
            m_target.push(change.map_or(0, |c| c.target_id as i64));
            m_emoji.push(change.map_or("", |c| c.emoji.as_str()));
            m_on.push(change.is_some_and(|c| c.on));
            if let Some(sent) = sent {
                s_key.push(sent.sender_key.as_str());
                s_client.push(sent.client_msg_id.as_str());
                s_room.push(msg.room.as_str());
                s_id.push(msg.id as i64);
                s_at.push(msg.sent_at_ms);
            }
        }
        if !m_id.is_empty() {
            // Plain INSERT: a repeated id would be a counter out of step with the rows,
            // and must fail loudly rather than silently keep the older message.
            let insert = tx
                .prepare_cached(
                    "INSERT INTO messages (room, id, username, text, sent_at_ms, guest, reply_to,
                                           change_kind, target, emoji, react_on)
                     SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[],
                                          $5::int8[], $6::bool[], $7::int8[], $8::int4[],
                                          $9::int8[], $10::text[], $11::bool[])",
                )
                .await
                .map_err(error)?;
            tx.execute(
                &insert,
                &[
                    &m_room, &m_id, &m_user, &m_text, &m_at, &m_guest, &m_reply, &m_kind,
                    &m_target, &m_emoji, &m_on,
                ],
            )
            .await
            .map_err(error)?;
            // In queue order, once every row of the batch is in: a change may name a
            // message of this same batch.
            for item in batch.iter() {
                if let Item::Message(msg, ..) = item {
                    if let Some(change) = &msg.change {
                        super::changes::apply(&tx, msg, change)
                            .await
                            .map_err(error)?;
                    }
                }
            }
        }
        if !s_id.is_empty() {
            // Replacing: a pair sent again after its record expired (but before pruning)
            // points at the new message; see the SQLite writer.
            let record = tx
                .prepare_cached(
                    "INSERT INTO sent_ids (sender_key, client_msg_id, room, id, sent_at_ms)
                     SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[],
                                          $5::int8[])
                     ON CONFLICT (sender_key, client_msg_id) DO UPDATE
                     SET room = EXCLUDED.room, id = EXCLUDED.id, sent_at_ms = EXCLUDED.sent_at_ms",
                )
                .await
                .map_err(error)?;
            tx.execute(&record, &[&s_key, &s_client, &s_room, &s_id, &s_at])
                .await
                .map_err(error)?;
        }
        tx.commit().await.map_err(error)
    }

    /// A room whose counter never moved has no messages, here or on any other server.
    async fn delete_empty_room(&self, name: &str) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        conn.execute(
            "DELETE FROM rooms WHERE name = $1 AND last_id = 0",
            &[&name],
        )
        .await
        .map_err(error)?;
        Ok(())
    }

    async fn prune_sent(&self, before_ms: i64) -> Result<usize, StoreError> {
        let conn = self.pool.get().await?;
        let pruned = conn
            .execute("DELETE FROM sent_ids WHERE sent_at_ms < $1", &[&before_ms])
            .await
            .map_err(error)?;
        Ok(pruned as usize)
    }
}

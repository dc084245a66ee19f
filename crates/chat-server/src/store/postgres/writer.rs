//! The writer task: commits whatever is queued as one transaction, taking each room's ids
//! from its counter row on the way.
//!
//! A batch is three statements whatever its size: advance the counters of the batch's
//! rooms (one upsert, rooms in name order, so two servers lock shared rooms in the same
//! order and never deadlock), claim the sent ids, insert the messages. The counter rows
//! stay locked until commit, so another server's batch into the same room waits, then
//! continues from the new count: ids are gapless, and commit order is id order. A claim
//! another server committed first (the same send racing through two servers) drops the
//! message: the counters go back by what was dropped and the repeat gets the original.
//! A batch that fails (the database gone, say) answers every append with the error and
//! the task goes on with the next one; nothing is retried behind the sender's back.
use std::{
    collections::{BTreeMap, HashSet},
    panic::{self, AssertUnwindSafe},
    sync::{atomic::Ordering, Arc},
    time::Instant,
};

use chat_proto::MessageResponse;
use metrics::Histogram;
use tokio::sync::{mpsc, oneshot};

use super::{error, Pool};
use crate::idempotency::SENT_ID_TTL;
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
            Ok(mut repeats) => {
                self.commit_times.record(started.elapsed());
                self.batch_sizes.record(batch.len() as f64);
                let mut messages = Vec::with_capacity(batch.len());
                let mut answers = Vec::with_capacity(batch.len());
                for (i, item) in batch.drain(..).enumerate() {
                    match item {
                        Item::Message(msg, _, done) => match repeats.remove(&i) {
                            // Stored already (by another server): answered, not fanned out.
                            Some(original) => answers.push(Ok((original, done))),
                            None => {
                                let msg = Arc::new(msg);
                                messages.push(Arc::clone(&msg));
                                answers.push(Ok((msg, done)));
                            }
                        },
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
    /// it set are never seen: its messages are refused). Returns the repeats: the
    /// original of each message (by its place in `batch`) whose sent id was claimed
    /// already, which is not stored.
    async fn write(&self, batch: &mut [Item]) -> Result<BTreeMap<usize, Committed>, StoreError> {
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
        number(batch, next_id.clone(), &BTreeMap::new());
        let dropped = claim(&tx, batch).await?;
        if !dropped.is_empty() {
            renumber(&tx, batch, next_id, &dropped).await?;
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
        for (i, item) in batch.iter().enumerate() {
            let Item::Message(msg, ..) = item else {
                continue;
            };
            if dropped.contains_key(&i) {
                continue;
            }
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
            for (i, item) in batch.iter().enumerate() {
                if let Item::Message(msg, ..) = item {
                    if let Some(change) = msg.change.as_ref().filter(|_| !dropped.contains_key(&i))
                    {
                        super::changes::apply(&tx, msg, change)
                            .await
                            .map_err(error)?;
                    }
                }
            }
        }
        // Read back last: a repeat of a message of this same batch finds it too.
        let mut repeats = BTreeMap::new();
        for (i, sent) in dropped {
            let original = super::reader::sent_in(&tx, &sent)
                .await
                .map_err(error)?
                .ok_or(StoreError::SentWithoutMessage(sent.client_msg_id))?;
            repeats.insert(i, Arc::new(original));
        }
        tx.commit().await.map_err(error)?;
        Ok(repeats)
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

/// Gives each message of `batch` but the `dropped` ones the next id of its room, from
/// `next_id` (per room, the first id the batch takes).
fn number(
    batch: &mut [Item],
    mut next_id: BTreeMap<String, i64>,
    dropped: &BTreeMap<usize, SentId>,
) {
    for (i, item) in batch.iter_mut().enumerate() {
        if let Item::Message(msg, ..) = item {
            if dropped.contains_key(&i) {
                continue;
            }
            let next = next_id
                .get_mut(&msg.room)
                .expect("the upsert returns every room of the batch");
            msg.id = *next as u64;
            *next += 1;
        }
    }
}

/// Claims the sent ids of the batch's messages, and returns the messages (by place in
/// `batch`) whose claim is held already: by a send another server committed within
/// `SENT_ID_TTL` (a claim it has not committed yet makes this statement wait for its
/// outcome), or by an earlier message of this batch. An expired claim is taken over, as
/// in SQLite: the pair then stands for the new message. The pairs are claimed in key
/// order, so two servers claiming the same ones wait for each other and never deadlock.
async fn claim(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &[Item],
) -> Result<BTreeMap<usize, SentId>, StoreError> {
    let mut claims: Vec<(&SentId, &MessageResponse)> = batch
        .iter()
        .filter_map(|item| match item {
            Item::Message(msg, Some(sent), _) => Some((sent, msg)),
            _ => None,
        })
        .collect();
    if claims.is_empty() {
        return Ok(BTreeMap::new());
    }
    // Stable: of one pair twice in the batch, the first in queue order is claimed.
    claims.sort_by(|a, b| a.0.cmp(b.0));
    claims.dedup_by(|a, b| a.0 == b.0);
    let (mut key, mut client, mut room, mut id, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (sent, msg) in &claims {
        key.push(sent.sender_key.as_str());
        client.push(sent.client_msg_id.as_str());
        room.push(msg.room.as_str());
        id.push(msg.id as i64);
        at.push(msg.sent_at_ms);
    }
    let ttl_ms = SENT_ID_TTL.as_millis() as i64;
    let record = tx
        .prepare_cached(
            "INSERT INTO sent_ids (sender_key, client_msg_id, room, id, sent_at_ms)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[])
             ON CONFLICT (sender_key, client_msg_id) DO UPDATE
             SET room = EXCLUDED.room, id = EXCLUDED.id, sent_at_ms = EXCLUDED.sent_at_ms
             WHERE sent_ids.sent_at_ms < EXCLUDED.sent_at_ms - $6
             RETURNING sender_key, client_msg_id, id",
        )
        .await
        .map_err(error)?;
    let claimed: HashSet<(String, String, i64)> = tx
        .query(&record, &[&key, &client, &room, &id, &at, &ttl_ms])
        .await
        .map_err(error)?
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let mut dropped = BTreeMap::new();
    for (i, item) in batch.iter().enumerate() {
        if let Item::Message(msg, Some(sent), _) = item {
            let mine = (
                sent.sender_key.clone(),
                sent.client_msg_id.clone(),
                msg.id as i64,
            );
            if !claimed.contains(&mine) {
                dropped.insert(i, sent.clone());
            }
        }
    }
    Ok(dropped)
}

/// After `claim` dropped messages: gives the others their ids again from `first_id`
/// (gapless), takes the dropped ones back off the room counters, and points the claims
/// at the new ids. Rare (identical sends racing through two servers), so a few
/// statements more are no matter.
async fn renumber(
    tx: &deadpool_postgres::Transaction<'_>,
    batch: &mut [Item],
    first_id: BTreeMap<String, i64>,
    dropped: &BTreeMap<usize, SentId>,
) -> Result<(), StoreError> {
    let mut old_ids = BTreeMap::new();
    let mut returned: BTreeMap<&str, i64> = BTreeMap::new();
    for (i, item) in batch.iter().enumerate() {
        if let Item::Message(msg, ..) = item {
            old_ids.insert(i, msg.id);
            if dropped.contains_key(&i) {
                *returned.entry(msg.room.as_str()).or_default() += 1;
            }
        }
    }
    let (names, counts): (Vec<&str>, Vec<i64>) = returned.into_iter().unzip();
    tx.execute(
        "UPDATE rooms SET last_id = rooms.last_id - u.count
         FROM UNNEST($1::text[], $2::int8[]) AS u(name, count) WHERE rooms.name = u.name",
        &[&names, &counts],
    )
    .await
    .map_err(error)?;
    drop(names);
    number(batch, first_id, dropped);
    let (mut key, mut client, mut id) = (Vec::new(), Vec::new(), Vec::new());
    for (i, item) in batch.iter().enumerate() {
        if let Item::Message(msg, Some(sent), _) = item {
            if !dropped.contains_key(&i) && old_ids.get(&i) != Some(&msg.id) {
                key.push(sent.sender_key.as_str());
                client.push(sent.client_msg_id.as_str());
                id.push(msg.id as i64);
            }
        }
    }
    if !id.is_empty() {
        tx.execute(
            "UPDATE sent_ids SET id = u.id
             FROM UNNEST($1::text[], $2::text[], $3::int8[]) AS u(key, client, id)
             WHERE sent_ids.sender_key = u.key AND sent_ids.client_msg_id = u.client",
            &[&key, &client, &id],
        )
        .await
        .map_err(error)?;
    }
    Ok(())
}

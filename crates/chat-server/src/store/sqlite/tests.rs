//! The store on its own: durability across reopen, order, group commit, paging, failure.
use std::{
    path::{Path, PathBuf},
    sync::{mpsc, Arc, Mutex},
};

use chat_proto::MessageResponse;
use futures::future::join_all;
use tempfile::TempDir;

use super::schema;
use crate::store::*;

pub(super) fn db() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chat.db");
    (dir, path)
}

pub(super) fn msg(room: &str, id: u64, text: &str) -> MessageResponse {
    MessageResponse {
        message: String::new(),
        id,
        username: format!("user{}", id % 7),
        room: room.into(),
        text: text.into(),
        sent_at_ms: 1_700_000_000_000 + id as i64,
        guest: false,
        ..Default::default()
    }
}

/// Each room's name and newest id, as the store found them at open.
fn room_ids(store: &MessageStore) -> Vec<(String, u64)> {
    store
        .rooms()
        .iter()
        .map(|room| (room.name.clone(), room.last_id))
        .collect()
}

pub(super) async fn open(path: &Path) -> MessageStore {
    MessageStore::open(
        &Database::Sqlite(path.to_owned()),
        Durability::Normal,
        4,
        |_: &[Committed]| {},
    )
    .await
    .unwrap()
}

/// Every batch `on_commit` was given, as (room, id).
type Batches = Arc<Mutex<Vec<Vec<(String, u64)>>>>;

async fn open_recording(path: &Path) -> (MessageStore, Batches) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let store = MessageStore::open(
        &Database::Sqlite(path.to_owned()),
        Durability::Full,
        4,
        move |batch: &[Committed]| {
            record
                .lock()
                .unwrap()
                .push(batch.iter().map(|m| (m.room.clone(), m.id)).collect());
        },
    )
    .await
    .unwrap();
    (store, seen)
}

/// A store whose writer stops inside the first `on_commit` until the test lets it go, so
/// the test can queue work knowing the writer will find all of it at once.
struct Gated {
    store: MessageStore,
    entered: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
    seen: Arc<Mutex<Vec<u64>>>,
}

async fn open_gated(path: &Path) -> Gated {
    let (entered_tx, entered) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let gate = Mutex::new(Some((entered_tx, release_rx)));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let store = MessageStore::open(
        &Database::Sqlite(path.to_owned()),
        Durability::Normal,
        4,
        move |batch: &[Committed]| {
            record.lock().unwrap().extend(batch.iter().map(|m| m.id));
            if let Some((entered, release)) = gate.lock().unwrap().take() {
                entered.send(()).unwrap();
                release.recv().unwrap();
            }
        },
    )
    .await
    .unwrap();
    Gated {
        store,
        entered,
        release,
        seen,
    }
}

async fn fill(store: &MessageStore, room: &str, ids: std::ops::RangeInclusive<u64>) {
    let pending: Vec<_> = ids
        .map(|id| store.append(msg(room, id, &format!("message {id}"))))
        .collect();
    for done in join_all(pending).await {
        done.unwrap();
    }
}

fn ids(messages: &[MessageResponse]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

#[tokio::test]
async fn everything_appended_is_there_after_reopen() {
    let (_dir, path) = db();
    let store = open(&path).await;
    let epoch = store.epoch();
    assert_ne!(epoch, 0);
    let stored = store.append(msg("general", 1, "hello")).await.unwrap();
    assert_eq!(stored.message, "[user1]: hello");
    fill(&store, "general", 2..=30).await;
    fill(&store, "other", 1..=5).await;
    drop(store);

    let store = open(&path).await;
    assert_eq!(store.epoch(), epoch, "the epoch is kept with the database");
    assert_eq!(
        room_ids(&store),
        [("general".to_owned(), 30), ("other".to_owned(), 5)]
    );
    let (messages, has_more) = store.history("general", 0, 100).await.unwrap();
    assert!(!has_more);
    assert_eq!(ids(&messages), (1..=30).collect::<Vec<_>>());
    assert_eq!(messages[0], *stored, "read back exactly as acknowledged");
    assert_eq!(messages[29].text, "message 30");
    assert_eq!(messages[29].message, "[user2]: message 30");
}

#[tokio::test]
async fn each_database_has_its_own_epoch() {
    let (_a, first) = db();
    let (_b, second) = db();
    assert_ne!(open(&first).await.epoch(), open(&second).await.epoch());
}

#[tokio::test]
async fn on_commit_sees_batches_in_queue_order_and_only_once_committed() {
    let (_dir, path) = db();
    let check_path = path.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let store = MessageStore::open(
        &Database::Sqlite(path.to_owned()),
        Durability::Full,
        4,
        move |batch: &[Committed]| {
            // Another connection must already see every message of the batch.
            let other = rusqlite::Connection::open(&check_path).unwrap();
            for m in batch {
                let found: i64 = other
                    .query_row(
                        "SELECT count(*) FROM messages WHERE room = ?1 AND id = ?2",
                        rusqlite::params![m.room, m.id],
                        |row| row.get(0),
                    )
                    .unwrap();
                assert_eq!(
                    found, 1,
                    "message {} fanned out before it was committed",
                    m.id
                );
            }
            record
                .lock()
                .unwrap()
                .extend(batch.iter().map(|m| (m.room.clone(), m.id)));
        },
    )
    .await
    .unwrap();
    let mut pending = Vec::new();
    for id in 1..=200 {
        pending.push(store.append(msg("a", id, "x")));
        pending.push(store.append(msg("b", id, "y")));
    }
    for done in join_all(pending).await {
        done.unwrap();
    }
    let expected: Vec<_> = (1..=200)
        .flat_map(|id| [("a".to_owned(), id), ("b".to_owned(), id)])
        .collect();
    assert_eq!(*seen.lock().unwrap(), expected);
    assert_eq!(store.stats().messages, 400);
}

#[tokio::test]
async fn whatever_is_queued_during_a_commit_goes_into_the_next_one() {
    let (_dir, path) = db();
    let gated = open_gated(&path).await;
    let first = gated.store.append(msg("general", 1, "first"));
    gated.entered.recv().unwrap();
    let rest: Vec<_> = (2..=301)
        .map(|id| gated.store.append(msg("general", id, "queued")))
        .collect();
    gated.release.send(()).unwrap();
    first.await.unwrap();
    for done in join_all(rest).await {
        done.unwrap();
    }
    assert_eq!(
        gated.store.stats(),
        StoreStats {
            batches: 2,
            messages: 301,
            failed_batches: 0
        }
    );
    assert_eq!(*gated.seen.lock().unwrap(), (1..=301).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_full_queue_refuses_appends_and_loses_nothing_it_took() {
    let (_dir, path) = db();
    let gated = open_gated(&path).await;
    // The writer holds the first batch, so everything after it waits in the queue.
    let first = gated.store.append(msg("general", 1, "first"));
    gated.entered.recv().unwrap();
    let queued: Vec<_> = (2..2 + MAX_QUEUED_APPENDS as u64)
        .map(|id| {
            gated
                .store
                .try_append(msg("general", id, "queued"))
                .unwrap()
        })
        .collect();
    let over = 2 + MAX_QUEUED_APPENDS as u64;
    assert_eq!(
        gated
            .store
            .try_append(msg("general", over, "one too many"))
            .err(),
        Some(StoreError::Busy(BUSY_RETRY_AFTER))
    );
    gated.release.send(()).unwrap();
    first.await.unwrap();
    for done in join_all(queued).await {
        done.unwrap();
    }
    // Every accepted append was committed; the queue has room again.
    assert_eq!(gated.store.stats().messages, 1 + MAX_QUEUED_APPENDS as u64);
    gated
        .store
        .append(msg("general", over, "room again"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_batched() {
    let (_dir, path) = db();
    let (store, seen) = open_recording(&path).await;
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { fill(&store, &format!("room{n}"), 1..=250).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.messages, 2000);
    assert!(
        stats.batches < stats.messages / 4,
        "group commit did not batch: {stats:?}"
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len() as u64, stats.batches);
    assert!(seen.iter().all(|batch| batch.len() <= MAX_BATCH));
    // However the rooms interleave, each room's fan-out is its id order.
    for n in 0..8 {
        let room = format!("room{n}");
        let fanned: Vec<u64> = seen
            .iter()
            .flatten()
            .filter(|(r, _)| *r == room)
            .map(|(_, id)| *id)
            .collect();
        assert_eq!(fanned, (1..=250).collect::<Vec<_>>(), "{room}");
    }
}

#[tokio::test]
async fn history_pages_backwards_through_everything() {
    let (_dir, path) = db();
    let store = open(&path).await;
    fill(&store, "general", 1..=450).await;
    fill(&store, "elsewhere", 1..=10).await;

    let (page, has_more) = store.history("general", 0, 200).await.unwrap();
    assert_eq!(ids(&page), (251..=450).collect::<Vec<_>>());
    assert!(has_more);
    let (page, has_more) = store.history("general", 251, 200).await.unwrap();
    assert_eq!(ids(&page), (51..=250).collect::<Vec<_>>());
    assert!(has_more);
    let (page, has_more) = store.history("general", 51, 200).await.unwrap();
    assert_eq!(ids(&page), (1..=50).collect::<Vec<_>>());
    assert!(!has_more);
    let (page, has_more) = store.history("general", 1, 200).await.unwrap();
    assert!(page.is_empty() && !has_more);

    let (page, has_more) = store.history("general", 0, 450).await.unwrap();
    assert_eq!(page.len(), 450);
    assert!(!has_more, "exactly everything is not 'more'");
    let (page, _) = store.history("general", u64::MAX, 3).await.unwrap();
    assert_eq!(ids(&page), [448, 449, 450]);
    let (page, has_more) = store.history("nowhere", 0, 50).await.unwrap();
    assert!(page.is_empty() && !has_more);
}

#[tokio::test]
async fn a_read_never_returns_more_than_the_cap() {
    let (_dir, path) = db();
    let store = open(&path).await;
    fill(&store, "general", 1..=(MAX_READ_ROWS as u64 + 5)).await;
    let (page, has_more) = store.history("general", 0, usize::MAX).await.unwrap();
    assert_eq!(page.len(), MAX_READ_ROWS);
    assert!(has_more);
    assert_eq!(
        store
            .after("general", 0, usize::MAX, usize::MAX)
            .await
            .unwrap()
            .len(),
        MAX_READ_ROWS
    );
}

#[tokio::test]
async fn a_history_page_stops_at_its_byte_bound_and_says_more_exist() {
    let (_dir, path) = db();
    let store = open(&path).await;
    let text = "x".repeat(4000);
    let count = (MAX_HISTORY_BYTES / 8000 + 10) as u64;
    let pending: Vec<_> = (1..=count)
        .map(|id| store.append(msg("general", id, &text)))
        .collect();
    for done in join_all(pending).await {
        done.unwrap();
    }
    let (page, has_more) = store.history("general", 0, 200).await.unwrap();
    assert!(has_more);
    let bytes: usize = page.iter().map(|m| m.message.len() + m.text.len()).sum();
    assert!(bytes < MAX_HISTORY_BYTES + 8100, "{bytes}");
    assert_eq!(page.last().unwrap().id, count, "the newest ones");
    let (older, _) = store.history("general", page[0].id, 200).await.unwrap();
    assert_eq!(
        older.last().unwrap().id,
        page[0].id - 1,
        "paging back goes on"
    );
}

#[tokio::test]
async fn an_after_page_stops_at_its_byte_bound() {
    let (_dir, path) = db();
    let store = open(&path).await;
    fill(&store, "general", 1..=20).await;
    let one = store.after("general", 0, 1, usize::MAX).await.unwrap();
    let row_bytes = one[0].message.len() + one[0].text.len();
    let page = store.after("general", 0, 100, 3 * row_bytes).await.unwrap();
    assert_eq!(ids(&page), [1, 2, 3]);
    let page = store.after("general", 0, 100, 1).await.unwrap();
    assert_eq!(ids(&page), [1], "at least one row");
}

#[tokio::test]
async fn after_pages_forwards_from_any_id() {
    let (_dir, path) = db();
    let store = open(&path).await;
    fill(&store, "general", 1..=450).await;

    let mut replayed = Vec::new();
    let mut last = 0;
    loop {
        let page = store.after("general", last, 100, usize::MAX).await.unwrap();
        let Some(newest) = page.last() else { break };
        last = newest.id;
        replayed.extend(ids(&page));
    }
    assert_eq!(replayed, (1..=450).collect::<Vec<_>>());
    assert_eq!(
        ids(&store.after("general", 445, 100, usize::MAX).await.unwrap()),
        [446, 447, 448, 449, 450]
    );
    assert!(store
        .after("general", u64::MAX, 10, usize::MAX)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn rooms_outlive_a_restart_even_without_messages() {
    let (_dir, path) = db();
    let store = open(&path).await;
    store.create_room("quiet").await.unwrap();
    store.create_room("busy").await.unwrap();
    fill(&store, "busy", 1..=3).await;
    store.create_room("busy").await.unwrap();
    drop(store);
    let store = open(&path).await;
    assert_eq!(
        room_ids(&store),
        [("busy".to_owned(), 3), ("quiet".to_owned(), 0)]
    );
}

#[tokio::test]
async fn a_failed_commit_refuses_its_whole_batch_and_fans_out_none_of_it() {
    let (_dir, path) = db();
    let gated = open_gated(&path).await;
    let first = gated.store.append(msg("general", 1, "fine"));
    gated.entered.recv().unwrap();
    // Another connection makes any message saying "boom" abort its transaction, as a
    // full disk would abort a commit.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER boom BEFORE INSERT ON messages WHEN NEW.text = 'boom'
             BEGIN SELECT RAISE(ABORT, 'disk on fire'); END;",
        )
        .unwrap();
    let doomed = [
        gated.store.append(msg("general", 2, "fine")),
        gated.store.append(msg("general", 3, "boom")),
        gated.store.append(msg("general", 4, "fine")),
    ];
    let room = gated.store.create_room("doomed");
    gated.release.send(()).unwrap();
    first.await.unwrap();
    let errors: Vec<_> = join_all(doomed)
        .await
        .into_iter()
        .map(|done| done.unwrap_err())
        .collect();
    let room_error = room.await.unwrap_err();
    assert!(
        matches!(errors[0], StoreError::Sqlite(_)),
        "{:?}",
        errors[0]
    );
    assert!(
        errors[0].to_string().contains("disk on fire"),
        "{}",
        errors[0]
    );
    assert!(
        errors.iter().all(|e| *e == errors[0]),
        "one failure, shared"
    );
    assert_eq!(room_error, errors[0]);
    assert_eq!(
        *gated.seen.lock().unwrap(),
        [1],
        "nothing of the batch fanned out"
    );
    assert_eq!(gated.store.stats().failed_batches, 1);

    // The writer carries on, and the failed batch left nothing behind.
    gated.store.append(msg("general", 5, "fine")).await.unwrap();
    let (page, _) = gated.store.history("general", 0, 10).await.unwrap();
    assert_eq!(ids(&page), [1, 5]);
    assert_eq!(*gated.seen.lock().unwrap(), [1, 5]);
    drop(gated);
    assert_eq!(room_ids(&open(&path).await), [("general".to_owned(), 5)]);
}

#[tokio::test]
async fn a_repeated_id_is_refused_not_overwritten() {
    let (_dir, path) = db();
    let store = open(&path).await;
    store.append(msg("general", 1, "original")).await.unwrap();
    let err = store
        .append(msg("general", 1, "impostor"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("UNIQUE"), "{err}");
    let (page, _) = store.history("general", 0, 10).await.unwrap();
    assert_eq!(page[0].text, "original");
}

#[tokio::test]
async fn close_commits_what_was_queued_and_refuses_the_rest() {
    let (_dir, path) = db();
    let store = open(&path).await;
    let queued: Vec<_> = (1..=100)
        .map(|id| store.append(msg("general", id, "before close")))
        .collect();
    store.close().await;
    for done in join_all(queued).await {
        done.unwrap();
    }
    assert_eq!(
        store.append(msg("general", 101, "too late")).await,
        Err(StoreError::Closed)
    );
    assert_eq!(store.create_room("late").await, Err(StoreError::Closed));
    store.close().await; // twice is fine
    drop(store);
    assert_eq!(room_ids(&open(&path).await), [("general".to_owned(), 100)]);
}

#[tokio::test]
async fn dropping_the_last_handle_still_commits_what_was_queued() {
    let (_dir, path) = db();
    let store = open(&path).await;
    let queued: Vec<_> = (1..=100)
        .map(|id| store.append(msg("general", id, "in flight")))
        .collect();
    drop(store);
    for done in join_all(queued).await {
        done.unwrap();
    }
    assert_eq!(room_ids(&open(&path).await), [("general".to_owned(), 100)]);
}

#[tokio::test]
async fn a_database_from_a_newer_server_is_refused() {
    let (_dir, path) = db();
    drop(open(&path).await);
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", schema::VERSION + 1)
        .unwrap();
    let refused = MessageStore::open(
        &Database::Sqlite(path.to_owned()),
        Durability::Normal,
        4,
        |_: &[Committed]| {},
    )
    .await;
    assert_eq!(
        refused.err(),
        Some(StoreError::NewerSchema(schema::VERSION + 1))
    );
}

#[tokio::test]
async fn a_version_1_database_is_upgraded_in_place() {
    let (_dir, path) = db();
    {
        // The layout as the first release wrote it, with one message.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(schema::V1).unwrap();
        conn.execute_batch(
            "INSERT INTO rooms (name) VALUES ('general');
             INSERT INTO messages (room, id, username, text, sent_at_ms)
                 VALUES ('general', 1, 'ann', 'old', 5);
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let store = open(&path).await;
    assert_eq!(room_ids(&store), [("general".to_owned(), 1)]);
    let (old, _) = store.history("general", 0, 10).await.unwrap();
    assert_eq!((old[0].text.as_str(), old[0].guest), ("old", false));
    let mut guest = msg("general", 2, "new");
    guest.guest = true;
    store.append(guest).await.unwrap();
    let (both, _) = store.history("general", 0, 10).await.unwrap();
    assert_eq!(
        both.iter().map(|m| m.guest).collect::<Vec<_>>(),
        [false, true]
    );
    store.close().await;
    drop(store);
    let version: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, schema::VERSION);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_beyond_the_limit_wait_their_turn() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let (_dir, path) = db();
    drop(open(&path).await);
    let readers = Arc::new(super::Readers::new(&path, 2));
    let (running, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reads = (0..8).map(|_| {
        let (running, peak) = (running.clone(), peak.clone());
        let readers = readers.clone();
        async move {
            readers
                .read(move |_| {
                    peak.fetch_max(running.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    // Long enough that reads without a limit would overlap.
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    Ok(())
                })
                .await
        }
    });
    for read in join_all(reads).await {
        read.unwrap();
    }
    assert!(peak.load(Ordering::SeqCst) <= 2, "{peak:?} at once");
}

fn sent(key: &str, id: &str) -> SentId {
    SentId {
        sender_key: key.into(),
        client_msg_id: id.into(),
    }
}

#[tokio::test]
async fn a_sent_id_finds_its_message_after_a_restart_and_only_within_its_window() {
    let (_dir, path) = db();
    let store = open(&path).await;
    let first = msg("general", 1, "hello"); // sent at 1_700_000_000_001
    store
        .try_append_sent(first.clone(), Some(sent("ann", "c-1")))
        .unwrap()
        .await
        .unwrap();
    store.append(msg("general", 2, "no id")).await.unwrap();
    drop(store);

    let store = open(&path).await;
    let found = store.find_sent(&sent("ann", "c-1"), 0).await.unwrap();
    assert_eq!(found.map(|m| (m.id, m.text)), Some((1, "hello".to_owned())));
    // Another sender's id, or another id, is another message.
    assert_eq!(store.find_sent(&sent("bob", "c-1"), 0).await.unwrap(), None);
    assert_eq!(store.find_sent(&sent("ann", "c-2"), 0).await.unwrap(), None);
    // Sent before the window: forgotten, though still stored.
    let after = first.sent_at_ms + 1;
    assert_eq!(
        store.find_sent(&sent("ann", "c-1"), after).await.unwrap(),
        None
    );

    // Sent again once expired, the pair points at the new message.
    store
        .try_append_sent(msg("general", 3, "again"), Some(sent("ann", "c-1")))
        .unwrap()
        .await
        .unwrap();
    let found = store.find_sent(&sent("ann", "c-1"), after).await.unwrap();
    assert_eq!(found.map(|m| m.id), Some(3));
}

#[tokio::test]
async fn pruning_forgets_sent_ids_older_than_the_cutoff_and_keeps_the_messages() {
    let (_dir, path) = db();
    let store = open(&path).await;
    for id in 1..=4 {
        store
            .try_append_sent(
                msg("general", id, "x"),
                Some(sent("ann", &format!("c-{id}"))),
            )
            .unwrap()
            .await
            .unwrap();
    }
    // Messages 1 and 2 were sent before the cutoff.
    let cutoff = msg("general", 3, "").sent_at_ms;
    assert_eq!(store.prune_sent(cutoff).await.unwrap(), 2);
    assert_eq!(store.prune_sent(cutoff).await.unwrap(), 0);
    for (id, kept) in [(1, false), (2, false), (3, true), (4, true)] {
        let found = store
            .find_sent(&sent("ann", &format!("c-{id}")), 0)
            .await
            .unwrap();
        assert_eq!(found.is_some(), kept, "c-{id}");
    }
    let (all, _) = store.history("general", 0, 10).await.unwrap();
    assert_eq!(all.len(), 4);
}

#[tokio::test]
async fn an_empty_room_can_be_deleted_and_one_with_messages_cannot() {
    let (_dir, path) = db();
    let store = open(&path).await;
    store.create_room("junk").await.unwrap();
    store.create_room("used").await.unwrap();
    let later = MessageResponse {
        sent_at_ms: 4_000_000_000_000, // after the room's creation, whenever this runs
        ..msg("used", 1, "hi")
    };
    store.append(later).await.unwrap();
    store.delete_empty_room("junk").await.unwrap();
    store.delete_empty_room("used").await.unwrap();
    // Deleted and created again in one go: the room is there.
    let again = store.create_room("again");
    let gone = store.delete_empty_room("again");
    let back = store.create_room("again");
    again.await.unwrap();
    gone.await.unwrap();
    back.await.unwrap();
    drop(store);
    let store = open(&path).await;
    assert_eq!(
        room_ids(&store),
        [("again".to_owned(), 0), ("used".to_owned(), 1)]
    );
    // Activity: the newest message's time, or the creation time for an empty room.
    assert_eq!(store.rooms()[1].last_active_ms, 4_000_000_000_000);
    let created = store.rooms()[0].last_active_ms;
    assert!(created > 1_700_000_000_000 && created < 4_000_000_000_000);
}

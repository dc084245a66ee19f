//! The store on PostgreSQL, against a server of the tests' own (`tests/common/pg.rs`):
//! what the SQLite tests check, with ids from the database, and what sharing adds: two
//! stores on one database (as two servers) agreeing on ids, commit order and accounts.
use std::sync::{Arc, Mutex};

use chat_proto::MessageResponse;
use futures::future::join_all;

use crate::test_pg as pg;
use crate::{
    sessions::token::TokenHash,
    store::{
        Account, Committed, Database, Durability, MessageStore, SentId, StoreError, StoredSession,
    },
};

fn msg(room: &str, user: &str, text: &str, at: i64) -> MessageResponse {
    MessageResponse {
        message: String::new(),
        id: 0,
        username: user.into(),
        room: room.into(),
        text: text.into(),
        sent_at_ms: at,
        guest: false,
        ..Default::default()
    }
}

/// Every id `on_commit` was given, in the order given.
type Seen = Arc<Mutex<Vec<(String, u64)>>>;

async fn open(db: &pg::Database) -> (MessageStore, Seen) {
    let seen: Seen = Arc::default();
    let record = Arc::clone(&seen);
    let store = MessageStore::open(
        &Database::Postgres(db.url.clone()),
        Durability::Full,
        4,
        move |batch: &[Committed]| {
            record
                .lock()
                .unwrap()
                .extend(batch.iter().map(|m| (m.room.clone(), m.id)));
        },
    )
    .await
    .unwrap();
    (store, seen)
}

async fn post(
    store: &MessageStore,
    room: &str,
    texts: impl IntoIterator<Item = String>,
) -> Vec<u64> {
    let pending: Vec<_> = texts
        .into_iter()
        .map(|text| store.append(msg(room, "ann", &text, 1_700_000_000_000)))
        .collect();
    join_all(pending)
        .await
        .into_iter()
        .map(|done| done.unwrap().id)
        .collect()
}

fn ids(messages: &[MessageResponse]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

#[tokio::test]
async fn ids_come_from_the_database_and_everything_is_there_after_reopen() {
    let db = pg::database();
    let (store, seen) = open(&db).await;
    assert!(store.assigns_ids());
    let epoch = store.epoch();
    assert_ne!(epoch, 0);
    let first = store
        .append(msg("general", "ann", "hello", 5))
        .await
        .unwrap();
    assert_eq!((first.id, first.message.as_str()), (1, "[ann]: hello"));
    let posted = post(&store, "general", (2..=30).map(|i| format!("m{i}"))).await;
    assert_eq!(
        posted,
        (2..=30).collect::<Vec<_>>(),
        "queue order is id order"
    );
    post(&store, "other", (1..=5).map(|i| format!("o{i}"))).await;
    let general: Vec<u64> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(room, _)| room == "general")
        .map(|(_, id)| *id)
        .collect();
    assert_eq!(
        general,
        (1..=30).collect::<Vec<_>>(),
        "on_commit in id order"
    );
    store.close().await;
    drop(store);

    let (store, _) = open(&db).await;
    assert_eq!(store.epoch(), epoch, "the epoch is kept with the database");
    let rooms: Vec<(String, u64)> = store
        .rooms()
        .iter()
        .map(|r| (r.name.clone(), r.last_id))
        .collect();
    assert_eq!(rooms, [("general".to_owned(), 30), ("other".to_owned(), 5)]);
    let (page, has_more) = store.history("general", 0, 10).await.unwrap();
    assert_eq!(ids(&page), (21..=30).collect::<Vec<_>>());
    assert!(has_more);
    assert_eq!(page[0].message, "[ann]: m21");
    let (older, _) = store.history("general", 21, 100).await.unwrap();
    assert_eq!(ids(&older), (1..=20).collect::<Vec<_>>());
    let after = store.after("general", 25, 100, usize::MAX).await.unwrap();
    assert_eq!(ids(&after), (26..=30).collect::<Vec<_>>());
    let next = store
        .append(msg("general", "ann", "again", 6))
        .await
        .unwrap();
    assert_eq!(next.id, 31, "ids continue after a reopen");
    store.close().await;
}

/// Two stores on one database are two servers: their posts into one room get gapless
/// ids, and nobody ever sees id n+1 committed without id n (commit order = id order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_share_a_room_with_gapless_ids_committed_in_order() {
    let db = pg::database();
    let (a, seen_a) = open(&db).await;
    let (b, seen_b) = open(&db).await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (reader, done) = (a.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let mut snapshots = 0;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                let (page, _) = reader.history("shared", 0, 1000).await.unwrap();
                let got = ids(&page);
                let want: Vec<u64> = (1..=got.len() as u64).collect();
                assert_eq!(
                    got, want,
                    "a reader saw a gap: commit order is not id order"
                );
                snapshots += 1;
                if finished {
                    return snapshots;
                }
            }
        })
    };
    let mut rounds = Vec::new();
    for round in 0..20 {
        let (a, b) = (a.clone(), b.clone());
        rounds.push(tokio::spawn(async move {
            let from_a = post(&a, "shared", (0..10).map(|i| format!("a{round}-{i}")));
            let from_b = post(&b, "shared", (0..10).map(|i| format!("b{round}-{i}")));
            let (x, y) = futures::join!(from_a, from_b);
            (x, y)
        }));
    }
    let mut all = Vec::new();
    for round in join_all(rounds).await {
        let (x, y) = round.unwrap();
        assert!(
            x.windows(2).all(|w| w[0] < w[1]),
            "one store's queue order is id order"
        );
        assert!(y.windows(2).all(|w| w[0] < w[1]));
        all.extend(x);
        all.extend(y);
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    assert!(watcher.await.unwrap() > 0);
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<_>>(), "gapless, each id once");
    for seen in [seen_a, seen_b] {
        let seen: Vec<u64> = seen.lock().unwrap().iter().map(|(_, id)| *id).collect();
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "each writer commits in id order"
        );
    }
    let (page, _) = b.history("shared", 0, 1000).await.unwrap();
    assert_eq!(ids(&page), (1..=400).collect::<Vec<_>>());
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn rooms_are_kept_and_only_empty_ones_deleted() {
    let db = pg::database();
    let (store, _) = open(&db).await;
    store.create_room("empty").await.unwrap();
    store.create_room("used").await.unwrap();
    post(&store, "used", ["x".to_owned()]).await;
    store.delete_empty_room("used").await.unwrap();
    store.delete_empty_room("empty").await.unwrap();
    store.create_room("kept").await.unwrap();
    store.close().await;
    let (store, _) = open(&db).await;
    let names: Vec<&str> = store.rooms().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["kept", "used"]);
    assert_eq!(store.rooms()[1].last_id, 1);
    store.close().await;
}

#[tokio::test]
async fn a_sent_id_finds_its_message_from_any_store_within_its_window() {
    let db = pg::database();
    let (a, _) = open(&db).await;
    let (b, _) = open(&db).await;
    let sent = SentId {
        sender_key: "ann".into(),
        client_msg_id: "c1".into(),
    };
    let posted = a
        .try_append_sent(msg("general", "ann", "once", 1_000), Some(sent.clone()))
        .unwrap()
        .await
        .unwrap();
    let found = b.find_sent(&sent, 500).await.unwrap().expect("found");
    assert_eq!((found.id, found.text.as_str()), (posted.id, "once"));
    assert_eq!(b.find_sent(&sent, 1_001).await.unwrap(), None, "too old");
    assert_eq!(b.prune_sent(1_001).await.unwrap(), 1);
    assert_eq!(a.find_sent(&sent, 0).await.unwrap(), None);
    let (page, _) = a.history("general", 0, 10).await.unwrap();
    assert_eq!(ids(&page), [posted.id], "pruning keeps the message");
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_sent_id_claimed_by_another_store_is_answered_with_its_message_and_takes_no_id() {
    let db = pg::database();
    let (a, _) = open(&db).await;
    let (b, seen_b) = open(&db).await;
    let pair = |id: &str| SentId {
        sender_key: "ann".into(),
        client_msg_id: id.into(),
    };
    let at = 1_700_000_000_000;
    let original = a
        .try_append_sent(msg("general", "ann", "once", at), Some(pair("p")))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(original.id, 1);
    // Queued without a pause, so one batch of B's: a repeat of A's pair between new
    // messages, and a pair twice in the batch itself.
    let queued = [
        (msg("general", "ann", "x", at), None),
        (msg("general", "ann", "once", at), Some(pair("p"))),
        (msg("general", "ann", "y", at), Some(pair("q"))),
        (msg("general", "ann", "y", at), Some(pair("q"))),
        (msg("other", "ann", "z", at), None),
    ]
    .map(|(m, sent)| b.try_append_sent(m, sent).unwrap());
    let got: Vec<(String, u64, String)> = join_all(queued)
        .await
        .into_iter()
        .map(|m| {
            let m = m.unwrap();
            (m.room.clone(), m.id, m.text.clone())
        })
        .collect();
    let want = [
        ("general", 2, "x"),
        ("general", 1, "once"),
        ("general", 3, "y"),
        ("general", 3, "y"),
        ("other", 1, "z"),
    ]
    .map(|(room, id, text)| (room.to_string(), id, text.to_string()));
    assert_eq!(got, want);
    assert_eq!(
        *seen_b.lock().unwrap(),
        [
            ("general".to_string(), 2),
            ("general".to_string(), 3),
            ("other".to_string(), 1)
        ],
        "only what B stored is fanned out"
    );
    assert_eq!(b.find_sent(&pair("q"), 0).await.unwrap().unwrap().id, 3);
    let (page, _) = a.history("general", 0, 10).await.unwrap();
    assert_eq!(ids(&page), [1, 2, 3], "each once, gapless");
    assert_eq!(
        post(&a, "general", ["next".to_string()]).await,
        [4],
        "the counter took no id for the repeat"
    );
    // A claim older than SENT_ID_TTL is taken over by a new message, as in SQLite.
    let later = at + crate::idempotency::SENT_ID_TTL.as_millis() as i64 + 1;
    let again = b
        .try_append_sent(msg("general", "ann", "once", later), Some(pair("p")))
        .unwrap()
        .await
        .unwrap();
    assert_eq!(again.id, 5);
    assert_eq!(a.find_sent(&pair("p"), 0).await.unwrap().unwrap().id, 5);
    a.close().await;
    b.close().await;
}

fn session(byte: u8, name: &str, account: bool, last_active_ms: i64) -> StoredSession {
    StoredSession {
        token_hash: TokenHash([byte; 32]),
        name: name.into(),
        account,
        last_active_ms,
    }
}

#[tokio::test]
async fn accounts_and_sessions_are_shared_by_every_store() {
    let db = pg::database();
    let (a, _) = open(&db).await;
    let (b, _) = open(&db).await;
    let (on_a, on_b) = (a.accounts().unwrap(), b.accounts().unwrap());
    assert!(on_a.is_shared());
    let ann = Account {
        name: "Ann".into(),
        password_hash: "hash1".into(),
    };
    on_a.insert_session(session(1, "Ann", false, 10))
        .await
        .unwrap();
    assert!(on_a
        .register(
            "ann",
            ann.clone(),
            session(2, "Ann", true, 20),
            Some(TokenHash([1; 32]))
        )
        .await
        .unwrap());
    assert!(
        !on_b
            .register("ann", ann.clone(), session(3, "Ann", true, 30), None)
            .await
            .unwrap(),
        "a name key is registered once, whichever server asks"
    );
    assert_eq!(on_b.account("ann").await.unwrap(), Some(ann));
    assert_eq!(
        on_b.session(TokenHash([1; 32])).await.unwrap(),
        None,
        "replaced"
    );
    assert_eq!(
        on_b.session(TokenHash([2; 32])).await.unwrap(),
        Some(session(2, "Ann", true, 20))
    );
    assert_eq!(on_b.session(TokenHash([3; 32])).await.unwrap(), None);

    on_a.insert_session(session(4, "Ann", true, 40))
        .await
        .unwrap();
    // B's copy idled out, but A recorded later activity: the row stays.
    on_a.record(Vec::new(), vec![(TokenHash([4; 32]), 100)])
        .await
        .unwrap();
    on_b.expire(vec![(TokenHash([4; 32]), 90)], Vec::new())
        .await
        .unwrap();
    assert!(on_a.session(TokenHash([4; 32])).await.unwrap().is_some());
    on_b.expire(vec![(TokenHash([4; 32]), 101)], Vec::new())
        .await
        .unwrap();
    assert_eq!(on_a.session(TokenHash([4; 32])).await.unwrap(), None);

    on_b.set_password("ann", "hash2".into(), vec![TokenHash([2; 32])])
        .await
        .unwrap();
    assert_eq!(
        on_a.account("ann").await.unwrap().unwrap().password_hash,
        "hash2"
    );
    assert_eq!(on_a.session(TokenHash([2; 32])).await.unwrap(), None);
    let (names, sessions) = on_a.load().await.unwrap();
    assert_eq!((names, sessions), (vec!["ann".to_owned()], Vec::new()));
    a.close().await;
    b.close().await;
}

#[tokio::test]
async fn a_database_set_up_by_a_newer_server_is_refused() {
    let db = pg::database();
    let (store, _) = open(&db).await;
    store.close().await;
    drop(store);
    pg::shared().sql_in(
        &db.name,
        "INSERT INTO chat_schema_migrations (version) VALUES (99)",
    );
    let refused = MessageStore::open(
        &Database::Postgres(db.url.clone()),
        Durability::Full,
        1,
        |_: &[Committed]| {},
    )
    .await
    .err()
    .expect("refused");
    assert_eq!(refused, StoreError::PgNewerSchema(99));
}

/// Edits, deletes and reactions are applied to their target in the transaction that
/// stores them, as on SQLite: History shows messages as they are now, a replay the events.
#[tokio::test]
async fn changes_apply_to_their_target_and_a_delete_erases_the_text() {
    use chat_proto::{change::Kind, Change};
    let db = pg::database();
    let (store, _) = open(&db).await;
    let original = store
        .append(msg("general", "ann", "first", 10))
        .await
        .unwrap();
    let change = |kind: Kind, emoji: &str, on: bool| {
        let mut event = msg("general", "bob", "", 20);
        event.change = Some(Change {
            kind: kind as i32,
            target_id: original.id,
            emoji: emoji.into(),
            on,
        });
        event
    };
    let mut edit = change(Kind::Edit, "", false);
    edit.text = "second".into();
    store.append(edit).await.unwrap();
    store.append(change(Kind::React, "👍", true)).await.unwrap();
    let mut reply = msg("general", "bob", "a reply", 30);
    reply.reply_to = original.id;
    store.append(reply).await.unwrap();
    let (page, _) = store.history("general", 0, 10).await.unwrap();
    assert_eq!(ids(&page), [1, 4], "change events are not history");
    assert_eq!(
        (page[0].text.as_str(), page[0].edited_at_ms),
        ("second", 20)
    );
    assert_eq!(page[0].reactions[0].usernames, ["bob"]);
    assert_eq!(page[1].quote.as_ref().unwrap().text, "second");
    store.append(change(Kind::Delete, "", false)).await.unwrap();
    let now = store
        .message("general", original.id)
        .await
        .unwrap()
        .unwrap();
    assert!(now.deleted && now.text.is_empty() && now.reactions.is_empty());
    let replay = store.after("general", 0, 10, usize::MAX).await.unwrap();
    assert_eq!(ids(&replay), [1, 2, 3, 4, 5]);
    assert_eq!(
        replay[1].text, "",
        "the edit event's text goes with the delete"
    );
    assert_eq!(replay[1].change.as_ref().unwrap().kind, Kind::Edit as i32);
    store.close().await;
}

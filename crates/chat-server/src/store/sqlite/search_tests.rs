//! The FTS5 index: what a search finds, in what order, and that it follows edits and
//! deletes, in step with the messages, on new databases and upgraded ones.
use chat_proto::{change::Kind, Change, MessageResponse};

use super::{schema, tests::*};
use crate::{search::SearchQuery, store::*};

fn query(words: &str) -> SearchQuery {
    SearchQuery::parse(words).unwrap()
}

async fn found(store: &MessageStore, room: &str, words: &str, before: u64) -> Vec<u64> {
    let (hits, _) = store
        .search(room, &query(words), before, 100)
        .await
        .unwrap();
    hits.iter().map(|m| m.id).collect()
}

fn change(room: &str, id: u64, target: u64, kind: Kind, text: &str) -> MessageResponse {
    MessageResponse {
        change: Some(Change {
            kind: kind as i32,
            target_id: target,
            ..Default::default()
        }),
        ..msg(room, id, text)
    }
}

/// The words the index holds, whichever message they came from.
fn indexed_words(path: &std::path::Path) -> Vec<String> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE VIRTUAL TABLE temp.words USING fts5vocab(main, message_search, 'row')",
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT term FROM temp.words ORDER BY term")
        .unwrap();
    let words = stmt.query_map([], |row| row.get(0)).unwrap();
    words.collect::<Result<_, _>>().unwrap()
}

#[tokio::test]
async fn hits_come_newest_first_a_page_at_a_time_from_one_room_only() {
    let (_dir, path) = db();
    let store = open(&path).await;
    for id in 1..=40 {
        let fruit = if id % 2 == 0 { "Apple" } else { "pear" };
        store
            .append(msg("orchard", id, &format!("{fruit} number {id}")))
            .await
            .unwrap();
        store
            .append(msg("other", id, "apple everywhere"))
            .await
            .unwrap();
    }
    let q = query("apple");
    let (first, has_more) = store.search("orchard", &q, 0, 5).await.unwrap();
    assert_eq!(
        first.iter().map(|m| m.id).collect::<Vec<_>>(),
        [40, 38, 36, 34, 32]
    );
    assert!(has_more);
    assert!(first
        .iter()
        .all(|m| m.room == "orchard" && m.text.starts_with("Apple")));
    // Paging on from the last hit reaches every one, once, and says when it is done.
    let (mut all, mut before) = (Vec::new(), 0);
    loop {
        let (page, more) = store.search("orchard", &q, before, 7).await.unwrap();
        all.extend(page.iter().map(|m| m.id));
        before = page.last().map_or(0, |m| m.id);
        if !more {
            break;
        }
    }
    assert_eq!(all, (1..=20).rev().map(|i| i * 2).collect::<Vec<_>>());
    // Every word must be there, in any order and case.
    assert_eq!(found(&store, "orchard", "NUMBER apple 12", 0).await, [12]);
    assert_eq!(
        found(&store, "orchard", "apple 13", 0).await,
        [] as [u64; 0]
    );
    assert_eq!(found(&store, "orchard", "pear", 6).await, [5, 3, 1]);
    assert!(found(&store, "nowhere", "apple", 0).await.is_empty());
}

#[tokio::test]
async fn an_edit_replaces_the_words_and_a_delete_takes_them_out_of_the_index() {
    let (_dir, path) = db();
    let store = open(&path).await;
    store
        .append(msg("general", 1, "meet at teh xylophonequay"))
        .await
        .unwrap();
    store
        .append(msg("general", 2, "harbour lights"))
        .await
        .unwrap();
    store
        .append(change(
            "general",
            3,
            1,
            Kind::Edit,
            "meet at the zanzibarquay",
        ))
        .await
        .unwrap();
    assert!(
        found(&store, "general", "xylophonequay", 0)
            .await
            .is_empty(),
        "old words go"
    );
    assert_eq!(
        found(&store, "general", "zanzibarquay", 0).await,
        [1],
        "new words come"
    );
    assert_eq!(found(&store, "general", "harbour", 0).await, [2]);
    let (hits, _) = store
        .search("general", &query("zanzibarquay"), 0, 10)
        .await
        .unwrap();
    assert_eq!(
        (hits[0].text.as_str(), hits[0].edited_at_ms > 0),
        ("meet at the zanzibarquay", true)
    );
    // The edit event's own text is not a message: it is never a hit of its own.
    assert_eq!(found(&store, "general", "meet", 0).await, [1]);

    store
        .append(change("general", 4, 1, Kind::Delete, ""))
        .await
        .unwrap();
    assert!(found(&store, "general", "zanzibarquay", 0).await.is_empty());
    store.close().await;
    drop(store);
    assert_eq!(indexed_words(&path), ["harbour", "lights"]);
    // Not masked by a tombstone but gone: no page of the file holds the words any more
    // (the last connection to close checkpointed the log and removed it).
    let file = std::fs::read(&path).unwrap();
    for word in [&b"xylophonequay"[..], b"zanzibarquay"] {
        assert!(
            !file.windows(word.len()).any(|w| w == word),
            "{:?} is still in the file",
            String::from_utf8_lossy(word)
        );
    }
}

#[tokio::test]
async fn a_database_from_before_search_gets_its_index_built_when_opened() {
    let (_dir, path) = db();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        for step in &schema::MIGRATIONS[..3] {
            conn.execute_batch(step).unwrap();
        }
        conn.execute_batch(
            "INSERT INTO rooms (name) VALUES ('general'), ('zoo');
             INSERT INTO messages (room, id, username, text, sent_at_ms)
                 VALUES ('general', 1, 'ann', 'an old needle', 5),
                        ('general', 2, 'ann', '', 6),
                        ('zoo', 1, 'bob', 'needle in the zoo', 7);
             UPDATE messages SET deleted = 1 WHERE id = 2;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = open(&path).await;
    assert_eq!(found(&store, "general", "needle", 0).await, [1]);
    assert_eq!(found(&store, "zoo", "needle", 0).await, [1]);
    // Rooms made after the upgrade get keys of their own.
    store.append(msg("new", 1, "a new needle")).await.unwrap();
    assert_eq!(found(&store, "new", "needle", 0).await, [1]);
    assert_eq!(found(&store, "general", "needle", 0).await, [1]);
}

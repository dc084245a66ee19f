//! Search over gRPC, on SQLite and on PostgreSQL alike: hits newest first and paged, from
//! the one room asked for, with their words' byte ranges; edits and deletes followed at
//! once; bad queries refused in words; a room the caller cannot read is NOT_FOUND.
mod common;

use chat_proto::{
    DeleteMessageRequest, EditMessageRequest, MessageRequest, RegisterRequest, SearchRequest,
    SearchResponse,
};
use common::{pg, within, SignedIn, TestServer};
use tonic::Code;

async fn register(server: &TestServer, name: &str) -> SignedIn {
    let joined = within(server.client().await.register(RegisterRequest {
        username: name.into(),
        password: "correct horse battery".into(),
    }))
    .await
    .unwrap()
    .into_inner();
    server.with_token(&joined.token).await
}

async fn post(client: &mut SignedIn, room: &str, text: &str) -> u64 {
    let sent = within(client.send_message(MessageRequest {
        message: text.into(),
        room: room.into(),
        ..Default::default()
    }));
    sent.await.unwrap().into_inner().id
}

fn search(room: &str, query: &str, before_id: u64, limit: u32) -> SearchRequest {
    SearchRequest {
        room: room.into(),
        query: query.into(),
        before_id,
        limit,
    }
}

async fn ask(server: &TestServer, request: SearchRequest) -> Result<SearchResponse, tonic::Status> {
    Ok(within(server.client().await.search(request))
        .await?
        .into_inner())
}

fn hit_ids(found: &SearchResponse) -> Vec<u64> {
    found
        .hits
        .iter()
        .map(|hit| hit.message.as_ref().unwrap().id)
        .collect()
}

/// The whole behaviour, against whichever store `server` runs on.
async fn searching_a_room(server: &TestServer) {
    let mut ann = register(server, "ann").await;
    let mut ids = Vec::new();
    for i in 1..=30 {
        let fruit = if i % 3 == 0 { "Apples" } else { "pears" };
        ids.push(post(&mut ann, "general", &format!("note {i} about {fruit}")).await);
    }
    post(&mut ann, "orchard", "apples here too").await;
    let apples: Vec<u64> = (1..=10).rev().map(|k| ids[k * 3 - 1]).collect();

    // Newest first, a page at a time, from general only.
    let first = ask(server, search("general", "apples", 0, 4))
        .await
        .unwrap();
    assert_eq!(hit_ids(&first), apples[..4]);
    assert!(first.has_more);
    let mut all = Vec::new();
    let mut before = 0;
    loop {
        let page = ask(server, search("general", "APPLES", before, 3))
            .await
            .unwrap();
        all.extend(hit_ids(&page));
        before = *all.last().unwrap();
        if !page.has_more {
            break;
        }
    }
    assert_eq!(all, apples);
    // The word's place in the text, for the client to mark.
    let hit = &first.hits[0];
    let text = &hit.message.as_ref().unwrap().text;
    assert_eq!(text, "note 30 about Apples");
    let ranges: Vec<&str> = hit
        .matches
        .iter()
        .map(|r| &text[r.start as usize..r.end as usize])
        .collect();
    assert_eq!(ranges, ["Apples"]);
    // Every word must be there; the default page is 20.
    let both = ask(server, search("general", "about 12", 0, 0))
        .await
        .unwrap();
    assert_eq!(hit_ids(&both), [ids[11]]);
    let common_word = ask(server, search("general", "note", 0, 0)).await.unwrap();
    assert_eq!((common_word.hits.len(), common_word.has_more), (20, true));
    let orchard = ask(server, search("orchard", "apples", 0, 0))
        .await
        .unwrap();
    assert_eq!(orchard.hits.len(), 1);

    // An edit is found by its new words only; a deleted message is found no more.
    let (newest, next) = (apples[0], apples[1]);
    within(ann.edit_message(EditMessageRequest {
        room: "general".into(),
        id: newest,
        text: "note 30 about plums".into(),
    }))
    .await
    .unwrap();
    let plums = ask(server, search("general", "plums", 0, 0)).await.unwrap();
    assert_eq!(hit_ids(&plums), [newest]);
    assert!(plums.hits[0].message.as_ref().unwrap().edited_at_ms > 0);
    within(ann.delete_message(DeleteMessageRequest {
        room: "general".into(),
        id: next,
    }))
    .await
    .unwrap();
    let after = ask(server, search("general", "apples", 0, 0))
        .await
        .unwrap();
    assert_eq!(hit_ids(&after), apples[2..]);

    // Bad requests, in words.
    let refused = |request| async { ask(server, request).await.unwrap_err() };
    let empty = refused(search("general", " ?! ", 0, 0)).await;
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(
        empty.message().contains("at least one word"),
        "{}",
        empty.message()
    );
    let long = refused(search("general", &"word ".repeat(41), 0, 0)).await;
    assert_eq!(long.code(), Code::InvalidArgument);
    assert!(long.message().contains("too long"), "{}", long.message());
    let many = refused(search("general", "a b c d e f g h i j k l m n o p q", 0, 0)).await;
    assert!(
        many.message().contains("too many words"),
        "{}",
        many.message()
    );
    let bad_room = refused(search("no such room!", "apples", 0, 0)).await;
    assert_eq!(bad_room.code(), Code::InvalidArgument);
    let missing = refused(search("nowhere", "apples", 0, 0)).await;
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains("no room named \"nowhere\""),
        "{}",
        missing.message()
    );
}

#[tokio::test]
async fn search_on_sqlite() {
    let server = TestServer::start().await;
    searching_a_room(&server).await;
}

#[tokio::test]
async fn search_on_postgres() {
    let db = pg::database();
    let server = TestServer::start_on(&db).await;
    searching_a_room(&server).await;
}

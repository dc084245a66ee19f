//! The one rule for names (chat_proto::names) at the server: look-alikes of a held name are
//! the same person, names mixing scripts are refused with a reason, and a name is shown
//! in its NFKC form.
mod common;

use chat_proto::{JoinRequest, MessageRequest};
use common::{req, TestServer};
use tonic::Code;

async fn try_join(server: &TestServer, name: &str) -> Result<String, tonic::Status> {
    let joined = server
        .client()
        .await
        .join(JoinRequest {
            username: name.into(),
        })
        .await?;
    Ok(joined.into_inner().username)
}

#[tokio::test]
async fn look_alikes_of_a_held_name_are_refused() {
    let server = TestServer::start().await;
    server.join("ann").await;
    server.join("émile").await;
    server.join("pop").await;

    for (name, holder) in [
        ("ÉMILE", "émile"),
        ("E\u{301}mile", "émile"),
        ("ＡＮＮ", "ann"),
    ] {
        let err = try_join(&server, name).await.unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{name}: {err:?}");
        assert!(err.message().contains("is in use"), "{}", err.message());
        // Nor can a token-less client post under it.
        let err = server
            .client()
            .await
            .send_message(req(name, "", "it's me"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied, "{name} as {holder}");
    }
    // All Cyrillic, so one script, and still "pop" to the eye.
    let err = try_join(&server, "\u{440}\u{43e}\u{440}")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::AlreadyExists, "{err:?}");

    // "аnn" with a Cyrillic а mixes scripts: refused whoever holds what, and says why.
    let err = try_join(&server, "\u{430}nn").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "username \"\u{430}nn\" mixes Latin and Cyrillic letters; use letters of one script"
    );
}

#[tokio::test]
async fn names_are_shown_in_nfkc_and_checked_by_one_rule() {
    let server = TestServer::start().await;
    // Fullwidth letters and a ligature are shown as plain ones.
    assert_eq!(try_join(&server, " ｏﬀice ").await.unwrap(), "office");
    // Japanese mixes Han, Hiragana and Katakana and is one script.
    assert_eq!(try_join(&server, "山田はなこ").await.unwrap(), "山田はなこ");

    let (mut signed_in, _) = server.join("\u{c9}lodie").await;
    let sent = signed_in
        .send_message(MessageRequest {
            // The body may name the session in any form that shows the same.
            username: "E\u{301}lodie".into(),
            message: "bonjour".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sent.username, "\u{c9}lodie");

    for (name, why) in [
        ("a\u{200b}b", "contains an invisible character (U+200B)"),
        ("a b", "contains a space"),
        ("a\u{7}b", "contains a control character"),
        (&"ﬀ".repeat(17), "too long (34 characters)"),
    ] {
        let err = try_join(&server, name).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{name:?}");
        assert!(err.message().contains(why), "{}", err.message());
    }
}

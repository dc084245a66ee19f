//! The session rules, on tokio's paused clock: expiry is driven by `advance`, not sleeps.
use std::collections::HashSet;

use tokio::time::advance;
use tonic::{metadata::MetadataMap, Code, Status};

use super::*;
use crate::limits::RETRY_AFTER_METADATA;

const IDLE: Duration = Duration::from_secs(60);
const MS: Duration = Duration::from_millis(1);

fn sessions() -> Sessions {
    Sessions::new(Limits {
        session_idle: IDLE,
        max_streams_per_session: 2,
        ..Limits::default()
    })
}

fn with_auth(value: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert("authorization", value.parse().unwrap());
    metadata
}

/// A session started in a test, with its token; stands in for its `Session`.
struct Joined {
    session: Session,
    token: String,
}

impl std::ops::Deref for Joined {
    type Target = Session;
    fn deref(&self) -> &Session {
        &self.session
    }
}

fn join(sessions: &Sessions, name: &str) -> Joined {
    let Started { session, token } = sessions.join(name).unwrap();
    Joined { session, token }
}

fn bearer(joined: &Joined) -> MetadataMap {
    with_auth(&format!("Bearer {}", joined.token))
}

fn status(err: ChatError) -> (Code, String) {
    let status = Status::from(err);
    (status.code(), status.message().to_owned())
}

#[tokio::test(start_paused = true)]
async fn a_name_is_taken_while_its_session_lives_and_freed_by_leave() {
    let sessions = sessions();
    let ann = join(&sessions, "ann");
    assert_eq!(ann.name(), "ann");
    let taken = sessions.join("ann").unwrap_err();
    assert_eq!(taken, ChatError::NameTaken("ann".into()));
    assert_eq!(
        status(taken),
        (
            Code::AlreadyExists,
            "the name \"ann\" is in use by someone signed in; pick another".into()
        )
    );
    assert!(sessions.join("bob").is_ok());

    sessions.leave(&ann);
    assert!(ann.is_ended());
    assert_eq!(
        sessions.authenticate(&bearer(&ann)).unwrap_err(),
        ChatError::Unauthenticated
    );
    let again = join(&sessions, "ann");
    assert_ne!(again.id(), ann.id());
    // Leaving with a stale handle does not end the name's new holder.
    sessions.leave(&ann);
    assert!(sessions.authenticate(&bearer(&again)).unwrap().is_some());
}

#[tokio::test]
async fn tokens_carry_at_least_128_random_bits_and_are_url_safe() {
    let sessions = sessions();
    let mut seen = HashSet::new();
    for i in 0..500 {
        let token = join(&sessions, &format!("n{i}")).token;
        assert!(token.len() * 4 >= 128, "{token}");
        assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
        assert!(seen.insert(token));
    }
    // Every nibble value turns up: the text is not, say, mostly zeros.
    let digits: HashSet<char> = seen.iter().flat_map(|t| t.chars()).collect();
    assert_eq!(digits.len(), 16);
}

#[tokio::test]
async fn authenticate_reads_the_bearer_token() {
    let sessions = sessions();
    let ann = join(&sessions, "ann");

    assert!(sessions
        .authenticate(&MetadataMap::new())
        .unwrap()
        .is_none());
    let found = sessions.authenticate(&bearer(&ann)).unwrap().unwrap();
    assert_eq!((found.id(), found.name()), (ann.id(), "ann"));
    let lower = with_auth(&format!("bearer  {} ", ann.token.as_str()));
    assert_eq!(
        sessions.authenticate(&lower).unwrap().unwrap().id(),
        ann.id()
    );

    for bad in ["Basic abc", "Bearer", "Bearer ", ann.token.as_str()] {
        assert_eq!(
            sessions.authenticate(&with_auth(bad)).unwrap_err(),
            ChatError::AuthorizationMalformed,
            "{bad:?}"
        );
    }
    let unknown = sessions
        .authenticate(&with_auth("Bearer 00ff"))
        .unwrap_err();
    assert_eq!(
        status(unknown),
        (
            Code::Unauthenticated,
            "your session has expired or is unknown; join again".into()
        )
    );
    // Tokens are compared exactly.
    let shouted = with_auth(&format!("Bearer {}", ann.token.as_str().to_uppercase()));
    assert!(sessions.authenticate(&shouted).is_err());
}

#[tokio::test]
async fn a_bare_name_is_refused_while_a_session_holds_it() {
    let sessions = sessions();
    assert_eq!(sessions.check_bare_name("ann"), Ok(()));
    let ann = join(&sessions, "ann");
    let held = sessions.check_bare_name("ann").unwrap_err();
    assert_eq!(
        status(held),
        (
            Code::PermissionDenied,
            "\"ann\" is signed in; send with that session's token (authorization: Bearer ...)"
                .into()
        )
    );
    assert_eq!(sessions.check_bare_name("bob"), Ok(()));
    sessions.leave(&ann);
    assert_eq!(sessions.check_bare_name("ann"), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn an_idle_session_expires_and_frees_its_name() {
    let sessions = sessions();
    let ann = join(&sessions, "ann");
    // Every call restarts the idle clock.
    for _ in 0..3 {
        advance(IDLE - MS).await;
        assert!(sessions.authenticate(&bearer(&ann)).unwrap().is_some());
    }
    advance(IDLE - MS).await;
    assert_eq!(
        sessions.check_bare_name("ann"),
        Err(ChatError::NameHeld("ann".into()))
    );
    assert!(sessions.sweep().ended.is_empty());

    advance(MS).await;
    let expired = sessions.sweep().ended;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].id(), ann.id());
    assert!(ann.is_ended());
    assert_eq!(sessions.check_bare_name("ann"), Ok(()));
    assert_eq!(
        sessions.authenticate(&bearer(&ann)).unwrap_err(),
        ChatError::Unauthenticated
    );
}

#[tokio::test(start_paused = true)]
async fn expiry_is_also_noticed_without_a_sweep() {
    let sessions = sessions();
    let ann = join(&sessions, "ann");
    advance(IDLE).await;
    let again = join(&sessions, "ann");
    assert!(ann.is_ended());
    assert_eq!(
        sessions.authenticate(&bearer(&ann)).unwrap_err(),
        ChatError::Unauthenticated
    );

    advance(IDLE).await;
    assert_eq!(
        sessions.authenticate(&bearer(&again)).unwrap_err(),
        ChatError::Unauthenticated
    );
}

#[tokio::test(start_paused = true)]
async fn open_streams_keep_a_session_alive_until_the_last_closes() {
    let sessions = sessions();
    let ann = join(&sessions, "ann");
    let first = sessions.open_stream(&ann).unwrap();
    let second = sessions.open_stream(&ann).unwrap();
    advance(IDLE * 10).await;
    assert!(sessions.sweep().ended.is_empty());
    drop(first);
    advance(IDLE * 10).await;
    assert!(sessions.sweep().ended.is_empty());

    // The idle clock starts when the last stream closes.
    drop(second);
    advance(IDLE - MS).await;
    assert!(sessions.sweep().ended.is_empty());
    assert!(sessions.check_bare_name("ann").is_err());
    advance(MS).await;
    assert_eq!(sessions.sweep().ended.len(), 1);
}

#[tokio::test]
async fn streams_per_session_are_capped_for_that_session_only() {
    let sessions = sessions();
    let ann = join(&sessions, "ann");
    let bob = join(&sessions, "bob");
    let a1 = sessions.open_stream(&ann).unwrap();
    let _a2 = sessions.open_stream(&ann).unwrap();
    let refused = sessions.open_stream(&ann).unwrap_err();
    assert_eq!(refused, ChatError::TooManyStreams { limit: 2 });
    assert_eq!(
        status(refused),
        (
            Code::ResourceExhausted,
            "you already have 2 streams open; close one first".into()
        )
    );
    // Bob is not affected by Ann's streams.
    let _b1 = sessions.open_stream(&bob).unwrap();
    let _b2 = sessions.open_stream(&bob).unwrap();
    drop(a1);
    assert!(sessions.open_stream(&ann).is_ok());
}

#[tokio::test]
async fn a_left_sessions_streams_do_not_count_against_the_names_next_holder() {
    let sessions = sessions();
    let old = join(&sessions, "ann");
    let old_stream = sessions.open_stream(&old).unwrap();
    sessions.leave(&old);
    assert_eq!(
        sessions.open_stream(&old).unwrap_err(),
        ChatError::Unauthenticated
    );

    let new = join(&sessions, "ann");
    let _n1 = sessions.open_stream(&new).unwrap();
    let _n2 = sessions.open_stream(&new).unwrap();
    drop(old_stream);
    assert_eq!(
        sessions.open_stream(&new).unwrap_err(),
        ChatError::TooManyStreams { limit: 2 }
    );
    // And the old session, though its stream is still running, may no longer post.
    assert_eq!(old.check_message_rate(), Err(ChatError::Unauthenticated));
}

#[tokio::test(start_paused = true)]
async fn message_rate_is_per_session_and_says_when_to_retry() {
    let sessions = sessions(); // 10 per second, burst 20
    let ann = join(&sessions, "ann");
    let bob = join(&sessions, "bob");
    for _ in 0..20 {
        ann.check_message_rate().unwrap();
    }
    advance(60 * MS).await;
    // A refusal takes nothing, so asking twice gets the same answer.
    let retry = Status::from(ann.check_message_rate().unwrap_err());
    assert_eq!(retry.metadata().get(RETRY_AFTER_METADATA).unwrap(), "40");
    let limited = ann.check_message_rate().unwrap_err();
    assert_eq!(
        status(limited),
        (
            Code::ResourceExhausted,
            "you are sending messages too fast; try again in 0.1 s".into()
        )
    );
    // Nobody else is slowed down.
    for _ in 0..20 {
        bob.check_message_rate().unwrap();
    }

    advance(40 * MS).await;
    ann.check_message_rate().unwrap();
    assert!(ann.check_message_rate().is_err());
}

#[tokio::test(start_paused = true)]
async fn typing_is_rate_limited_per_session() {
    let sessions = sessions(); // 1 per second, burst 3
    let ann = join(&sessions, "ann");
    for _ in 0..3 {
        ann.check_typing_rate().unwrap();
    }
    let limited = ann.check_typing_rate().unwrap_err();
    assert_eq!(
        limited.to_string(),
        "you are sending typing notifications too fast; try again in 1.0 s"
    );
    // Typing does not use up the message allowance.
    ann.check_message_rate().unwrap();
    advance(Duration::from_secs(1)).await;
    ann.check_typing_rate().unwrap();
}

#[tokio::test(start_paused = true)]
async fn zero_means_unlimited_messages() {
    let sessions = Sessions::new(Limits {
        max_messages_per_sec: 0,
        ..Limits::default()
    });
    let ann = join(&sessions, "ann");
    for _ in 0..10_000 {
        ann.check_message_rate().unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn a_registered_name_is_nobody_elses_and_a_guest_may_claim_its_own() {
    let sessions = sessions();
    let carol = join(&sessions, "carol");
    // Someone else's guest name cannot be claimed; the guest's own can.
    assert_eq!(
        sessions.claim("carol", None),
        Err(ChatError::NameTaken("carol".into()))
    );
    assert_eq!(sessions.claim("carol", Some(&carol)), Ok(true));
    assert_eq!(
        sessions.claim("Carol", Some(&carol)),
        Err(ChatError::NameRegistered("Carol".into()))
    );
    assert_eq!(sessions.claim("ann", None), Ok(false));
    assert_eq!(
        sessions.join("ANN").unwrap_err(),
        ChatError::NameRegistered("ANN".into())
    );
    assert_eq!(
        sessions.check_bare_name("ann"),
        Err(ChatError::NameRegisteredBare("ann".into()))
    );
    // Any number of account sessions share the name.
    let phone = sessions.sign_in("ann").unwrap();
    let laptop = sessions.sign_in("ann").unwrap();
    assert!(!phone.session.is_guest());
    assert_eq!(sessions.live_of("ann", Some(&phone.session)).len(), 1);
    assert_eq!(sessions.live_of("ann", None).len(), 2);
    sessions.leave(&laptop.session);
    assert_eq!(sessions.live_of("ann", None).len(), 1);
    // A failed registration gives the name back.
    sessions.unclaim("dave");
    assert_eq!(sessions.claim("dave", None), Ok(false));
    sessions.unclaim("dave");
    assert!(sessions.join("dave").is_ok());
}

#[tokio::test(start_paused = true)]
async fn restored_sessions_keep_their_remaining_idle_time() {
    let sessions = sessions();
    let now = unix_ms();
    let stored = |name: &str, account: bool, idle_ms: i64| StoredSession {
        token_hash: TokenHash::of(name),
        name: name.into(),
        account,
        last_active_ms: now - idle_ms,
    };
    let gone = sessions.restore(
        ["ann".to_owned()],
        vec![
            stored("ann", true, 10_000),
            stored("bob", false, 30_000),
            stored("old", false, IDLE.as_millis() as i64),
            // A guest session on a registered name, or without its account, is dropped.
            stored("Ann", false, 0),
            stored("nobody", true, 0),
        ],
    );
    let dropped = [
        TokenHash::of("old"),
        TokenHash::of("Ann"),
        TokenHash::of("nobody"),
    ];
    assert_eq!(gone, dropped);
    // Bob had 30 of his 60 idle seconds left (looking at his name is no activity; the
    // second of margin is for the wall clock, which moves on while the test runs).
    let held = || sessions.check_bare_name("bob");
    assert_eq!(held(), Err(ChatError::NameHeld("bob".into())));
    advance(IDLE / 2 - Duration::from_secs(1)).await;
    assert!(held().is_err());
    advance(Duration::from_secs(1)).await;
    assert_eq!(held(), Ok(()));
    assert!(sessions.authenticate(&with_auth("Bearer bob")).is_err());
    // Ann's account session idles by the account rule (30 days by default).
    assert!(sessions.authenticate(&with_auth("Bearer ann")).is_ok());
}

#[tokio::test(start_paused = true)]
async fn the_sweep_records_activity_at_most_once_a_minute() {
    let sessions = Sessions::new(Limits {
        session_idle: Duration::from_secs(600),
        ..Limits::default()
    });
    let ann = join(&sessions, "ann");
    let _bob = join(&sessions, "bob");
    // Just started: the database has it as of now.
    assert!(sessions.sweep().active.is_empty());
    advance(RECORD_ACTIVITY_EVERY - MS).await;
    sessions.authenticate(&bearer(&ann)).unwrap();
    assert!(
        sessions.sweep().active.is_empty(),
        "less than a minute of activity since the record"
    );
    advance(MS).await;
    sessions.authenticate(&bearer(&ann)).unwrap();
    let active = sessions.sweep().active;
    assert_eq!(active.len(), 1, "bob was idle");
    assert_eq!(active[0].0, ann.token_hash());
    // Recorded: the next sweep has nothing to say until a minute of activity more.
    assert!(sessions.sweep().active.is_empty());
    // An open stream counts as activity.
    let _stream = sessions.open_stream(&ann).unwrap();
    advance(RECORD_ACTIVITY_EVERY * 2).await;
    assert_eq!(sessions.sweep().active.len(), 1);
}

#[tokio::test]
async fn sessions_past_the_cap_are_refused_with_a_wait() {
    let sessions = Sessions::new(Limits {
        max_sessions: 2,
        ..Limits::default()
    });
    let ann = join(&sessions, "ann");
    sessions.claim("bob", None).unwrap();
    sessions.sign_in("bob").unwrap();
    let full = sessions.join("carol").unwrap_err();
    assert!(matches!(full, ChatError::TooManySessions { limit: 2, .. }));
    let status = Status::from(full);
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.metadata().get(RETRY_AFTER_METADATA).unwrap(),
        "30000"
    );
    assert!(sessions.sign_in("bob").is_err());
    sessions.leave(&ann);
    assert!(sessions.join("carol").is_ok());
}

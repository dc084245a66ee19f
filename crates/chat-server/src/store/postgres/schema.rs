//! The PostgreSQL layout, brought up to date at start.
//!
//! Each step in `MIGRATIONS` is applied once, recorded in `chat_schema_migrations`, all in
//! one transaction under an advisory lock, so servers starting together on one database
//! neither race nor apply a step twice; a database set up by a newer server is refused
//! rather than misread. `rooms.last_id` is each room's id counter: the writer advances it
//! in the transaction that inserts the messages (see `writer`).
use tokio_postgres::Transaction;

use super::{error, Pool};
use crate::store::{StoreError, StoredRoom};

/// Bumped when the layout changes.
pub const VERSION: i32 = MIGRATIONS.len() as i32;

/// Step `i` takes the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[V1, V2, V3, V4];

/// Any fixed number: the advisory lock that serializes servers migrating one database.
const MIGRATION_LOCK: i64 = 0x6368_6174_7067; // "chatpg"

/// Names are compared byte for byte (`COLLATE "C"`), as SQLite does and as the writer
/// orders the rooms it locks. `sessions` and `sent_ids` are as in SQLite (see
/// `sqlite::schema`): token hashes only, and who sent which client id.
const V1: &str = r#"
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value BIGINT NOT NULL
    );
    CREATE TABLE rooms (
        name TEXT COLLATE "C" PRIMARY KEY,
        created_at_ms BIGINT NOT NULL,
        last_id BIGINT NOT NULL DEFAULT 0,
        last_active_ms BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE messages (
        room TEXT COLLATE "C" NOT NULL,
        id BIGINT NOT NULL,
        username TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms BIGINT NOT NULL,
        guest BOOLEAN NOT NULL,
        PRIMARY KEY (room, id)
    );
    CREATE TABLE accounts (
        name_key TEXT COLLATE "C" PRIMARY KEY,
        name TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at_ms BIGINT NOT NULL
    );
    CREATE TABLE sessions (
        token_hash BYTEA PRIMARY KEY,
        name TEXT NOT NULL,
        name_key TEXT COLLATE "C" NOT NULL,
        account BOOLEAN NOT NULL,
        last_active_ms BIGINT NOT NULL
    );
    CREATE INDEX sessions_by_name ON sessions (name_key);
    CREATE TABLE sent_ids (
        sender_key TEXT COLLATE "C" NOT NULL,
        client_msg_id TEXT COLLATE "C" NOT NULL,
        room TEXT COLLATE "C" NOT NULL,
        id BIGINT NOT NULL,
        sent_at_ms BIGINT NOT NULL,
        PRIMARY KEY (sender_key, client_msg_id)
    );
    CREATE INDEX sent_ids_by_time ON sent_ids (sent_at_ms);
"#;

/// Replies, edits, deletes and reactions, as SQLite's V3 (see `sqlite::schema`): a change
/// event is a row of `messages` with `change_kind` set, naming its `target`; the writer
/// applies it to the target in the transaction that stores it (`changes`).
const V2: &str = r#"
    ALTER TABLE messages
        ADD COLUMN reply_to BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN edited_at_ms BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT false,
        ADD COLUMN change_kind INTEGER,
        ADD COLUMN target BIGINT NOT NULL DEFAULT 0,
        ADD COLUMN emoji TEXT NOT NULL DEFAULT '',
        ADD COLUMN react_on BOOLEAN NOT NULL DEFAULT false;
    CREATE INDEX messages_by_target ON messages (room, target) WHERE change_kind IS NOT NULL;
    CREATE TABLE reactions (
        room TEXT COLLATE "C" NOT NULL,
        message BIGINT NOT NULL,
        emoji TEXT NOT NULL,
        reactor_key TEXT COLLATE "C" NOT NULL,
        reactor TEXT NOT NULL,
        event BIGINT NOT NULL,
        PRIMARY KEY (room, message, emoji, reactor_key)
    );
"#;

/// One guest per name across every server: a guest's Join claims the name's row here (see
/// `PgAccounts::claim_guest`), so two servers cannot both hand it out. Older duplicates
/// (from before this step) keep their newest session.
const V3: &str = r#"
    DELETE FROM sessions a USING sessions b
     WHERE NOT a.account AND NOT b.account AND a.name_key = b.name_key
       AND (a.last_active_ms, a.token_hash) < (b.last_active_ms, b.token_hash);
    CREATE UNIQUE INDEX sessions_one_guest_per_name ON sessions (name_key) WHERE NOT account;
"#;

/// Full-text search (see `crate::search`): each message's words as a `tsvector` the
/// database keeps in step with its text (a generated column, so an edit replaces them and
/// a delete, which empties the text, removes them), under a GIN index. The `simple`
/// configuration lowercases and never stems nor drops stop words: a chat mixes languages,
/// and a stemmer or stop list fits one of them, so words match as typed in any language,
/// as in SQLite. Change events carry no words. Adding the column fills it for the
/// messages already stored.
const V4: &str = r#"
    ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS
        (CASE WHEN change_kind IS NULL THEN to_tsvector('simple', text) END) STORED;
    CREATE INDEX messages_search ON messages USING GIN (search);
"#;

/// Applies what is missing; returns the epoch and every room.
pub(super) async fn migrate(pool: &Pool) -> Result<(u64, Vec<StoredRoom>), StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await.map_err(error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(error)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS chat_schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )",
    )
    .await
    .map_err(error)?;
    let version: i32 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM chat_schema_migrations",
            &[],
        )
        .await
        .map_err(error)?
        .get(0);
    if version > VERSION {
        return Err(StoreError::PgNewerSchema(version));
    }
    for (step, sql) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
        tx.batch_execute(sql).await.map_err(error)?;
        tx.execute(
            "INSERT INTO chat_schema_migrations (version) VALUES ($1)",
            &[&(step as i32 + 1)],
        )
        .await
        .map_err(error)?;
    }
    let epoch = epoch(&tx).await.map_err(error)?;
    let rooms = tx
        .query(
            "SELECT name, last_id, GREATEST(last_active_ms, created_at_ms) FROM rooms ORDER BY name",
            &[],
        )
        .await
        .map_err(error)?
        .iter()
        .map(|row| StoredRoom {
            name: row.get(0),
            last_id: row.get::<_, i64>(1) as u64,
            last_active_ms: row.get::<_, i64>(2).max(0) as u64,
        })
        .collect();
    tx.commit().await.map_err(error)?;
    Ok((epoch, rooms))
}

/// Chosen at random (never 0) by the first server, read back by every later one.
async fn epoch(tx: &Transaction<'_>) -> Result<u64, tokio_postgres::Error> {
    let candidate = rand::random_range(1..=u64::MAX) as i64;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('epoch', $1) ON CONFLICT (key) DO NOTHING",
        &[&candidate],
    )
    .await?;
    let row = tx
        .query_one("SELECT value FROM meta WHERE key = 'epoch'", &[])
        .await?;
    // Stored as the same 64 bits in a signed BIGINT.
    Ok(row.get::<_, i64>(0) as u64)
}

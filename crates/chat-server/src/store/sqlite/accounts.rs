//! Accounts and sessions in the database: registered names with their password hashes,
//! and every live session by the hash of its token, so a restart signs nobody out.
//!
//! These writes are rare next to messages (a sign-in, a password change, activity once a
//! minute per session, in batches), so they do not go through the message writer: one
//! connection of their own, used on tokio's blocking pool, one call at a time (SQLite
//! has one writer anyway; WAL and the busy timeout let it take turns with the message
//! writer). Callers wait their turn on an async lock, not on a blocking thread.
use std::{path::Path, sync::Arc};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::Mutex;

use super::schema;
use crate::sessions::token::TokenHash;
use crate::store::{Account, Durability, StoreError, StoredSession};

/// Cheap to clone.
#[derive(Clone)]
pub(in crate::store) struct SqliteAccounts {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteAccounts {
    /// Opens its connection to a database the message store has already opened (and so
    /// created or upgraded).
    pub fn open(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn =
            schema::open_side_writer(path, durability).map_err(|source| StoreError::Open {
                path: path.to_owned(),
                source: Arc::new(source),
            })?;
        Ok(SqliteAccounts {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Every registered name key, and every stored session.
    pub async fn load(&self) -> Result<(Vec<String>, Vec<StoredSession>), StoreError> {
        self.run(|conn| {
            let names = conn
                .prepare("SELECT name_key FROM accounts")?
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            let sessions = conn
                .prepare("SELECT token_hash, name, account, last_active_ms FROM sessions")?
                .query_map([], |row| {
                    Ok(StoredSession {
                        token_hash: TokenHash(row.get(0)?),
                        name: row.get(1)?,
                        account: row.get(2)?,
                        last_active_ms: row.get(3)?,
                    })
                })?
                .collect::<Result<_, _>>()?;
            Ok((names, sessions))
        })
        .await
    }

    /// Writes a new account with its first session, and drops the session it replaces
    /// (the caller's guest session of the same name), in one transaction. False when the
    /// name key is registered already.
    pub async fn register(
        &self,
        key: &str,
        account: Account,
        session: StoredSession,
        replaces: Option<TokenHash>,
    ) -> Result<bool, StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let inserted = tx.execute(
                "INSERT OR IGNORE INTO accounts (name_key, name, password_hash, created_at_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    key,
                    account.name,
                    account.password_hash,
                    session.last_active_ms
                ],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            if let Some(old) = replaces {
                tx.execute("DELETE FROM sessions WHERE token_hash = ?1", [old.0])?;
            }
            insert_session(&tx, &key, &session)?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    pub async fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            conn.query_row(
                "SELECT name, password_hash FROM accounts WHERE name_key = ?1",
                [key],
                |row| {
                    Ok(Account {
                        name: row.get(0)?,
                        password_hash: row.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    /// Sets the account's password hash and deletes the listed sessions, together.
    pub async fn set_password(
        &self,
        key: &str,
        password_hash: String,
        ended: Vec<TokenHash>,
    ) -> Result<(), StoreError> {
        let key = key.to_owned();
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.execute(
                "UPDATE accounts SET password_hash = ?2 WHERE name_key = ?1",
                params![key, password_hash],
            )?;
            delete_sessions(&tx, &ended)?;
            tx.commit()
        })
        .await
    }

    pub async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        self.run(move |conn| {
            let key = crate::sessions::name_key(&session.name);
            insert_session(conn, &key, &session).map(drop)
        })
        .await
    }

    /// Deletes ended sessions and records the activity of live ones, in one transaction.
    pub async fn record(
        &self,
        ended: Vec<TokenHash>,
        active: Vec<(TokenHash, i64)>,
    ) -> Result<(), StoreError> {
        if ended.is_empty() && active.is_empty() {
            return Ok(());
        }
        self.run(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            delete_sessions(&tx, &ended)?;
            {
                let mut touch = tx.prepare_cached(
                    "UPDATE sessions SET last_active_ms = ?2 WHERE token_hash = ?1",
                )?;
                for (hash, ms) in &active {
                    touch.execute(params![hash.0, ms])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Runs `query` on the blocking pool once the connection is free.
    async fn run<T: Send + 'static>(
        &self,
        query: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut conn = Arc::clone(&self.conn).lock_owned().await;
        match tokio::task::spawn_blocking(move || query(&mut conn)).await {
            Ok(result) => result.map_err(StoreError::sqlite),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => Err(StoreError::Closed),
        }
    }
}

fn insert_session(conn: &Connection, key: &str, s: &StoredSession) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "INSERT INTO sessions (token_hash, name, name_key, account, last_active_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        s.token_hash.0,
        s.name,
        key,
        s.account,
        s.last_active_ms
    ])
}

fn delete_sessions(conn: &Connection, hashes: &[TokenHash]) -> rusqlite::Result<()> {
    let mut delete = conn.prepare_cached("DELETE FROM sessions WHERE token_hash = ?1")?;
    for hash in hashes {
        delete.execute([hash.0])?;
    }
    Ok(())
}

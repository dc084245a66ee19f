//! Accounts and stored sessions, in whichever database holds the messages: registered
//! names with their password hashes, and every live session by the hash of its token, so
//! a restart signs nobody out, and (on PostgreSQL) a token issued by one server is good
//! on every other.
use std::path::Path;

use super::{postgres, sqlite::accounts::SqliteAccounts, Durability, StoreError};
use crate::sessions::token::TokenHash;

/// A session as the database keeps it: never the token, only its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub token_hash: TokenHash,
    pub name: String,
    /// An account's session, else a guest's.
    pub account: bool,
    /// Ms since the Unix epoch; recorded at most once a minute, see `sessions`.
    pub last_active_ms: i64,
}

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The name as registered (the key is its `name_key`).
    pub name: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// Cheap to clone. Made by `MessageStore::accounts`.
#[derive(Clone)]
pub struct AccountStore(Backend);

#[derive(Clone)]
enum Backend {
    Sqlite(SqliteAccounts),
    Postgres(postgres::accounts::PgAccounts),
}

impl AccountStore {
    pub(super) fn sqlite(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        Ok(AccountStore(Backend::Sqlite(SqliteAccounts::open(
            path, durability,
        )?)))
    }

    pub(super) fn postgres(pool: postgres::Pool) -> Self {
        AccountStore(Backend::Postgres(postgres::accounts::PgAccounts::new(pool)))
    }

    /// Whether other servers may write here too (PostgreSQL): then a token or a name
    /// this server has not seen may still be in the database.
    pub fn is_shared(&self) -> bool {
        matches!(self.0, Backend::Postgres(_))
    }

    /// Every registered name key, and every stored session.
    pub async fn load(&self) -> Result<(Vec<String>, Vec<StoredSession>), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => db.load().await,
            Backend::Postgres(db) => db.load().await,
        }
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
        match &self.0 {
            Backend::Sqlite(db) => db.register(key, account, session, replaces).await,
            Backend::Postgres(db) => db.register(key, account, session, replaces).await,
        }
    }

    pub async fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => db.account(key).await,
            Backend::Postgres(db) => db.account(key).await,
        }
    }

    /// The stored session with this token hash, if any (another server may have started
    /// it). Only a shared database has sessions this server does not hold already.
    pub async fn session(&self, hash: TokenHash) -> Result<Option<StoredSession>, StoreError> {
        match &self.0 {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(db) => db.session(hash).await,
        }
    }

    /// Sets the account's password hash and deletes the listed sessions, together.
    pub async fn set_password(
        &self,
        key: &str,
        password_hash: String,
        ended: Vec<TokenHash>,
    ) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => db.set_password(key, password_hash, ended).await,
            Backend::Postgres(db) => db.set_password(key, password_hash, ended).await,
        }
    }

    pub async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => db.insert_session(session).await,
            Backend::Postgres(db) => db.insert_session(session).await,
        }
    }

    /// Stores a new guest session, claiming its name in the database: false when a guest
    /// active at `idle_before_ms` or later holds it through another server. On SQLite this
    /// server holds every session, and has checked already.
    pub async fn claim_guest(
        &self,
        session: StoredSession,
        idle_before_ms: i64,
    ) -> Result<bool, StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => db.insert_session(session).await.map(|()| true),
            Backend::Postgres(db) => db.claim_guest(session, idle_before_ms).await,
        }
    }

    /// Deletes ended sessions and records the activity of live ones, in one transaction.
    pub async fn record(
        &self,
        ended: Vec<TokenHash>,
        active: Vec<(TokenHash, i64)>,
    ) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => db.record(ended, active).await,
            Backend::Postgres(db) => db.record(ended, active).await,
        }
    }

    /// `record` for a sweep: deletes sessions that idled out here, each with the time
    /// (ms since the Unix epoch) its recorded activity must be older than. On a shared
    /// database another server may have kept the session alive, and then the row stays;
    /// on SQLite this server saw every call, so the row goes.
    pub async fn expire(
        &self,
        idle: Vec<(TokenHash, i64)>,
        active: Vec<(TokenHash, i64)>,
    ) -> Result<(), StoreError> {
        match &self.0 {
            Backend::Sqlite(db) => {
                let ended = idle.into_iter().map(|(hash, _)| hash).collect();
                db.record(ended, active).await
            }
            Backend::Postgres(db) => db.expire(idle, active).await,
        }
    }
}

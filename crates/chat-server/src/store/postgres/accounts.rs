//! Accounts and sessions in PostgreSQL, shared by every server on the database: a name
//! key is registered once (its primary key), and a session row is found by the hash of
//! its token from any server. Each call takes a pooled connection for its statements.
use crate::{
    sessions::{name_key, token::TokenHash},
    store::{Account, StoreError, StoredSession},
};

use super::{error, Pool};

#[derive(Clone)]
pub(in crate::store) struct PgAccounts {
    pool: Pool,
}

fn hash_of(bytes: &[u8]) -> Option<TokenHash> {
    bytes.try_into().ok().map(TokenHash)
}

fn session(row: &tokio_postgres::Row) -> Option<StoredSession> {
    Some(StoredSession {
        token_hash: hash_of(row.get::<_, &[u8]>(0))?,
        name: row.get(1),
        account: row.get(2),
        last_active_ms: row.get(3),
    })
}

impl PgAccounts {
    pub fn new(pool: Pool) -> Self {
        PgAccounts { pool }
    }

    pub async fn load(&self) -> Result<(Vec<String>, Vec<StoredSession>), StoreError> {
        let conn = self.pool.get().await?;
        let names = conn
            .query("SELECT name_key FROM accounts", &[])
            .await
            .map_err(error)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let sessions = conn
            .query(
                "SELECT token_hash, name, account, last_active_ms FROM sessions",
                &[],
            )
            .await
            .map_err(error)?
            .iter()
            .filter_map(session)
            .collect();
        Ok((names, sessions))
    }

    pub async fn register(
        &self,
        key: &str,
        account: Account,
        session: StoredSession,
        replaces: Option<TokenHash>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(error)?;
        let inserted = tx
            .execute(
                "INSERT INTO accounts (name_key, name, password_hash, created_at_ms)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (name_key) DO NOTHING",
                &[
                    &key,
                    &account.name,
                    &account.password_hash,
                    &session.last_active_ms,
                ],
            )
            .await
            .map_err(error)?;
        if inserted == 0 {
            return Ok(false);
        }
        if let Some(old) = replaces {
            tx.execute(
                "DELETE FROM sessions WHERE token_hash = $1",
                &[&old.0.as_slice()],
            )
            .await
            .map_err(error)?;
        }
        insert_session(&*tx, key, &session).await?;
        tx.commit().await.map_err(error)?;
        Ok(true)
    }

    pub async fn account(&self, key: &str) -> Result<Option<Account>, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT name, password_hash FROM accounts WHERE name_key = $1",
                &[&key],
            )
            .await
            .map_err(error)?;
        Ok(row.map(|row| Account {
            name: row.get(0),
            password_hash: row.get(1),
        }))
    }

    pub async fn session(&self, hash: TokenHash) -> Result<Option<StoredSession>, StoreError> {
        let conn = self.pool.get().await?;
        let row = conn
            .query_opt(
                "SELECT token_hash, name, account, last_active_ms FROM sessions
                 WHERE token_hash = $1",
                &[&hash.0.as_slice()],
            )
            .await
            .map_err(error)?;
        Ok(row.as_ref().and_then(session))
    }

    pub async fn set_password(
        &self,
        key: &str,
        password_hash: String,
        ended: Vec<TokenHash>,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(error)?;
        tx.execute(
            "UPDATE accounts SET password_hash = $2 WHERE name_key = $1",
            &[&key, &password_hash],
        )
        .await
        .map_err(error)?;
        tx.execute(
            "DELETE FROM sessions WHERE token_hash = ANY($1)",
            &[&slices(&ended)],
        )
        .await
        .map_err(error)?;
        tx.commit().await.map_err(error)
    }

    pub async fn insert_session(&self, session: StoredSession) -> Result<(), StoreError> {
        let conn = self.pool.get().await?;
        insert_session(&**conn, &name_key(&session.name), &session).await
    }

    /// Stores a new guest session holding its name, unless a guest session that was
    /// active at `idle_before_ms` or later holds it already (through any server); one
    /// idle since is replaced. Returns whether the name was claimed. Atomic: of two
    /// servers claiming one name at once, one wins.
    pub async fn claim_guest(
        &self,
        session: StoredSession,
        idle_before_ms: i64,
    ) -> Result<bool, StoreError> {
        let conn = self.pool.get().await?;
        let claimed = conn
            .execute(
                "INSERT INTO sessions (token_hash, name, name_key, account, last_active_ms)
                 VALUES ($1, $2, $3, FALSE, $4)
                 ON CONFLICT (name_key) WHERE NOT account DO UPDATE
                   SET token_hash = EXCLUDED.token_hash, name = EXCLUDED.name,
                       last_active_ms = EXCLUDED.last_active_ms
                   WHERE sessions.last_active_ms < $5",
                &[
                    &session.token_hash.0.as_slice(),
                    &session.name,
                    &name_key(&session.name),
                    &session.last_active_ms,
                    &idle_before_ms,
                ],
            )
            .await
            .map_err(error)?;
        Ok(claimed == 1)
    }

    pub async fn record(
        &self,
        ended: Vec<TokenHash>,
        active: Vec<(TokenHash, i64)>,
    ) -> Result<(), StoreError> {
        let cutoffs = vec![i64::MAX; ended.len()];
        self.write(ended, cutoffs, active).await
    }

    /// `record`, deleting each ended session only if its recorded activity is older than
    /// its cutoff: a session another server kept busy stays.
    pub async fn expire(
        &self,
        idle: Vec<(TokenHash, i64)>,
        active: Vec<(TokenHash, i64)>,
    ) -> Result<(), StoreError> {
        let (ended, cutoffs) = idle.into_iter().unzip();
        self.write(ended, cutoffs, active).await
    }

    async fn write(
        &self,
        ended: Vec<TokenHash>,
        cutoffs: Vec<i64>,
        active: Vec<(TokenHash, i64)>,
    ) -> Result<(), StoreError> {
        if ended.is_empty() && active.is_empty() {
            return Ok(());
        }
        let (touched, at): (Vec<TokenHash>, Vec<i64>) = active.into_iter().unzip();
        let mut conn = self.pool.get().await?;
        let tx = conn.transaction().await.map_err(error)?;
        if !ended.is_empty() {
            tx.execute(
                "DELETE FROM sessions s USING UNNEST($1::bytea[], $2::int8[]) AS e(hash, cutoff)
                 WHERE s.token_hash = e.hash AND s.last_active_ms < e.cutoff",
                &[&slices(&ended), &cutoffs],
            )
            .await
            .map_err(error)?;
        }
        if !touched.is_empty() {
            // GREATEST: another server may have recorded later activity already.
            tx.execute(
                "UPDATE sessions s SET last_active_ms = GREATEST(s.last_active_ms, a.at)
                 FROM UNNEST($1::bytea[], $2::int8[]) AS a(hash, at)
                 WHERE s.token_hash = a.hash",
                &[&slices(&touched), &at],
            )
            .await
            .map_err(error)?;
        }
        tx.commit().await.map_err(error)
    }
}

fn slices(hashes: &[TokenHash]) -> Vec<&[u8]> {
    hashes.iter().map(|h| h.0.as_slice()).collect()
}

async fn insert_session(
    conn: &impl tokio_postgres::GenericClient,
    key: &str,
    s: &StoredSession,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sessions (token_hash, name, name_key, account, last_active_ms)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &s.token_hash.0.as_slice(),
            &s.name,
            &key,
            &s.account,
            &s.last_active_ms,
        ],
    )
    .await
    .map_err(error)?;
    Ok(())
}

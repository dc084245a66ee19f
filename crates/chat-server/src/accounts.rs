//! Accounts: registering a name with a password, signing in, changing the password,
//! signing out everywhere; and keeping every session (guest or account) in the database,
//! so a restart signs nobody out. The handlers call this; it ties together the session
//! registry (`sessions`, the fast in-memory path), the database (`store::accounts`),
//! the hasher (`passwords`) and the brake on guessing (`guessing`).
//!
//! Writes reach the database before the registry acts on them when that order matters
//! (a session ended in memory but not on disk would come back at the next start).
use std::{
    net::IpAddr,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::{
    bus::{wire::Revoke, Bus},
    client_addr::ClientIp,
    error::ChatError,
    guessing::{Guessing, Outcome},
    passwords::{self, Passwords},
    sessions::{name_key, token::TokenHash, Kind, Session, Sessions, Started},
    shutdown::Shutdown,
    store::{Account, AccountStore, StoreError, StoredSession},
    wall_clock::unix_ms,
};

/// Cheap to clone.
#[derive(Clone)]
pub struct Accounts {
    sessions: Sessions,
    store: AccountStore,
    passwords: Passwords,
    guessing: Arc<Mutex<Guessing>>,
    /// A hash of a random password, checked against when a name has no account, so a
    /// wrong name takes as long to refuse as a wrong password.
    decoy_hash: Arc<str>,
    /// With servers sharing the database: sessions ended here are ended on the others
    /// at once, through the bus (see `join_bus`).
    bus: Arc<OnceLock<Bus>>,
}

impl Accounts {
    /// Takes in what the database holds: registered names and live sessions (deleting
    /// those that idled out while the server was down).
    pub async fn open(store: AccountStore, sessions: Sessions) -> Result<Self, StoreError> {
        let (registered, stored) = store.load().await?;
        let gone = sessions.restore(registered, stored);
        store.record(gone, Vec::new()).await?;
        let passwords = Passwords::default();
        let decoy = passwords::random_password();
        let decoy_hash = match passwords.hash(&decoy).await {
            Ok(hash) => hash.into(),
            // Only when the runtime is going away before anything started.
            Err(_) => return Err(StoreError::Closed),
        };
        Ok(Accounts {
            sessions,
            store,
            passwords,
            guessing: Arc::default(),
            decoy_hash,
            bus: Arc::default(),
        })
    }

    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Tells the servers on `bus` of every session ended here from now on.
    pub fn join_bus(&self, bus: Bus) {
        let _ = self.bus.set(bus);
    }

    /// Ends here what another server ended (see `wire::Revoke`): its own sessions of the
    /// account are deleted from the database too, since that server may not have known
    /// them. Returns how many sessions this server held.
    pub async fn revoked(&self, revoke: Revoke) -> Result<usize, ChatError> {
        let tokens: Vec<TokenHash> = revoke
            .tokens
            .iter()
            .filter_map(|t| <[u8; 32]>::try_from(t.as_slice()).ok().map(TokenHash))
            .collect();
        let mut ended = self.sessions.forget_tokens(&tokens);
        if !revoke.account.is_empty() {
            let mut all = self.sessions.live_of(&revoke.account, None);
            all.retain(|s| s.token_hash().0[..] != revoke.keep[..]);
            self.end(&all).await?;
            ended += all.len();
        }
        Ok(ended)
    }

    fn publish_revoke(&self, account: Option<(&str, Option<&Session>)>, tokens: &[Session]) {
        let Some(bus) = self.bus.get() else { return };
        let (account, keep) = match account {
            Some((name, keep)) => (name.to_owned(), keep.map(|s| s.token_hash().0.to_vec())),
            None => (String::new(), None),
        };
        bus.publish_revoke(Revoke {
            server: 0,
            account,
            keep: keep.unwrap_or_default(),
            tokens: tokens.iter().map(|s| s.token_hash().0.to_vec()).collect(),
        });
    }

    /// The caller's session (see `Sessions::authenticate`). With a shared database a
    /// token this server does not hold may be another server's: it is looked up there by
    /// its hash and, if live, kept here from then on.
    pub async fn authenticate(&self, metadata: &MetadataMap) -> Result<Option<Session>, ChatError> {
        match self.sessions.authenticate(metadata) {
            Err(ChatError::Unauthenticated) if self.store.is_shared() => {}
            known => return known,
        }
        let Some(hash) = Sessions::token_hash(metadata)? else {
            return Ok(None);
        };
        let stored = self
            .store
            .session(hash)
            .await
            .map_err(ChatError::AccountStore)?
            .ok_or(ChatError::Unauthenticated)?;
        self.sessions.adopt(stored).map(Some)
    }

    /// Makes sure this server knows whether `name` (validated) is registered before it
    /// lets a guest or a token-less client use it. It knows every account registered
    /// through it; with a shared database, one registered through another server is
    /// looked up there (and remembered). Nothing to do with SQLite.
    pub async fn learn_registered(&self, name: &str) -> Result<(), ChatError> {
        if !self.store.is_shared() || self.sessions.is_registered(name) {
            return Ok(());
        }
        if self.load_account(&name_key(name)).await?.is_some() {
            self.sessions.mark_registered(name);
        }
        Ok(())
    }

    /// The name the account holding `name` (validated) registered, if one does: read
    /// from the database, unless this server knows it holds every account (SQLite) and
    /// `name` is not one.
    pub async fn registered_as(&self, name: &str) -> Result<Option<String>, ChatError> {
        if !self.store.is_shared() && !self.sessions.is_registered(name) {
            return Ok(None);
        }
        Ok(self.load_account(&name_key(name)).await?.map(|a| a.name))
    }

    /// A guest session holding `name` (validated), stored before its token is handed out.
    pub async fn join(&self, name: &str) -> Result<Started, ChatError> {
        self.learn_registered(name).await?;
        let started = self.sessions.join(name)?;
        // The database decides between servers: a guest another server holds keeps it.
        let idle = self.sessions.idle_time(Kind::Guest);
        let idle_before_ms = unix_ms() - i64::try_from(idle.as_millis()).unwrap_or(i64::MAX);
        match self
            .store
            .claim_guest(stored(&started.session), idle_before_ms)
            .await
        {
            Ok(true) => Ok(started),
            Ok(false) => {
                self.sessions.leave(&started.session);
                Err(ChatError::NameTaken(name.to_owned()))
            }
            Err(err) => {
                self.sessions.leave(&started.session);
                Err(ChatError::AccountStore(err))
            }
        }
    }

    /// Registers `name` (validated) with `password` and signs in. `caller` is the
    /// session the request came with: if it is the guest session holding `name`, the
    /// account takes the name over from it (that session ends, the new one continues).
    pub async fn register(
        &self,
        caller: Option<&Session>,
        name: &str,
        password: &str,
    ) -> Result<Started, ChatError> {
        let password = passwords::check_new(password)?;
        let upgrading = self.sessions.claim(name, caller)?;
        let replaces = caller.filter(|_| upgrading);
        let registered = self.write_account(name, password, replaces).await;
        match &registered {
            // Registered through another server: it stays registered here too.
            Err(ChatError::NameRegistered(_)) => {}
            Err(_) => self.sessions.unclaim(name),
            Ok(_) => {}
        }
        let started = registered?;
        if let Some(guest) = replaces {
            self.sessions.leave(guest);
        }
        Ok(started)
    }

    async fn write_account(
        &self,
        name: &str,
        password: &str,
        replaces: Option<&Session>,
    ) -> Result<Started, ChatError> {
        let password_hash = self.passwords.hash(password).await?;
        let started = self.sessions.sign_in(name)?;
        let account = Account {
            name: name.to_owned(),
            password_hash,
        };
        let written = self
            .store
            .register(
                &name_key(name),
                account,
                stored(&started.session),
                replaces.map(Session::token_hash),
            )
            .await;
        match written {
            Ok(true) => Ok(started),
            failed => {
                self.sessions.leave(&started.session);
                match failed {
                    // Registered meanwhile, through another server sharing the database.
                    Ok(_) => Err(ChatError::NameRegistered(name.to_owned())),
                    Err(err) => Err(ChatError::AccountStore(err)),
                }
            }
        }
    }

    /// A new session of the account registered as `name`, if `password` is its password.
    /// `ip` is the client's address, for the brake on guessing.
    pub async fn sign_in(
        &self,
        name: &str,
        password: &str,
        ip: Option<ClientIp>,
    ) -> Result<Started, ChatError> {
        let password = passwords::check_length(password)?;
        let key = name_key(name);
        let mut attempt = self.attempt(name, &key, ip)?;
        let account = self.load_account(&key).await?;
        let hash = account
            .as_ref()
            .map_or(&*self.decoy_hash, |a| &a.password_hash);
        let right = self.passwords.verify(password, hash).await?;
        let Some(account) = account.filter(|_| right) else {
            attempt.finish(Outcome::Wrong);
            return Err(ChatError::WrongPassword);
        };
        attempt.finish(Outcome::Right);
        // It may have been registered through another server sharing the database.
        self.sessions.mark_registered(&account.name);
        let started = self.sessions.sign_in(&account.name)?;
        tracing::info!(
            name = account.name,
            session = started.session.id(),
            "signed in"
        );
        self.store_new(started).await
    }

    /// Sets a new password for the caller's account, given the current one. Every other
    /// session of the account ends (whoever knew the old password is signed out); the
    /// caller's goes on.
    pub async fn change_password(
        &self,
        caller: &Session,
        current: &str,
        new: &str,
        ip: Option<ClientIp>,
    ) -> Result<(), ChatError> {
        if caller.is_guest() {
            return Err(ChatError::GuestNotAccount("ChangePassword"));
        }
        let new = passwords::check_new(new)?;
        let current = passwords::check_length(current)?;
        let key = name_key(caller.name());
        let mut attempt = self.attempt(caller.name(), &key, ip)?;
        let account = self
            .load_account(&key)
            .await?
            .ok_or(ChatError::Unauthenticated)?;
        if !self
            .passwords
            .verify(current, &account.password_hash)
            .await?
        {
            attempt.finish(Outcome::Wrong);
            return Err(ChatError::WrongCurrentPassword);
        }
        attempt.finish(Outcome::Right);
        let password_hash = self.passwords.hash(new).await?;
        let others = self.sessions.live_of(caller.name(), Some(caller));
        self.store
            .set_password(&key, password_hash, hashes(&others))
            .await
            .map_err(ChatError::AccountStore)?;
        for session in &others {
            self.sessions.leave(session);
        }
        self.publish_revoke(Some((caller.name(), Some(caller))), &[]);
        tracing::info!(
            name = caller.name(),
            session = caller.id(),
            others = others.len(),
            "password changed"
        );
        Ok(())
    }

    /// Ends every session speaking as the caller's name, the caller's included; returns
    /// how many.
    pub async fn sign_out_everywhere(&self, caller: &Session) -> Result<usize, ChatError> {
        let all = self.sessions.live_of(caller.name(), None);
        self.end(&all).await?;
        self.publish_revoke(Some((caller.name(), None)), &[]);
        tracing::info!(
            name = caller.name(),
            session = caller.id(),
            sessions = all.len(),
            "signed out everywhere"
        );
        Ok(all.len())
    }

    /// Ends one session (Leave).
    pub async fn leave(&self, session: &Session) -> Result<(), ChatError> {
        self.end(std::slice::from_ref(session)).await?;
        self.publish_revoke(None, std::slice::from_ref(session));
        Ok(())
    }

    async fn end(&self, sessions: &[Session]) -> Result<(), ChatError> {
        self.store
            .record(hashes(sessions), Vec::new())
            .await
            .map_err(ChatError::AccountStore)?;
        for session in sessions {
            self.sessions.leave(session);
        }
        Ok(())
    }

    /// Sweeps the registry every `period` until shutdown: ends idle sessions and writes
    /// that down, with the activity of the live ones (see `Sessions::sweep`).
    pub async fn sweep_every(self, period: Duration, shutdown: Shutdown) {
        let mut ticks = shutdown.every(period);
        while ticks.next().await {
            let swept = self.sessions.sweep();
            for session in &swept.ended {
                tracing::debug!(
                    name = session.name(),
                    session = session.id(),
                    "session expired"
                );
            }
            // Expired here; on a shared database another server may have kept it busy.
            let now_ms = unix_ms();
            let idle = swept
                .ended
                .iter()
                .map(|s| {
                    let idle = self.sessions.idle_time(s.kind());
                    (s.token_hash(), now_ms - idle.as_millis() as i64)
                })
                .collect();
            if let Err(err) = self.store.expire(idle, swept.active).await {
                tracing::warn!(%err, "could not record session activity; trying again next sweep");
            }
        }
    }

    async fn store_new(&self, started: Started) -> Result<Started, ChatError> {
        match self.store.insert_session(stored(&started.session)).await {
            Ok(()) => Ok(started),
            Err(err) => {
                self.sessions.leave(&started.session);
                Err(ChatError::AccountStore(err))
            }
        }
    }

    async fn load_account(&self, key: &str) -> Result<Option<Account>, ChatError> {
        self.store
            .account(key)
            .await
            .map_err(ChatError::AccountStore)
    }

    fn attempt(&self, name: &str, key: &str, ip: Option<ClientIp>) -> Result<Attempt, ChatError> {
        let ip = ip.map(|ip| ip.0);
        self.guessing
            .lock()
            .unwrap()
            .begin(name, key, ip, Instant::now())?;
        Ok(Attempt {
            guessing: Arc::clone(&self.guessing),
            key: key.to_owned(),
            ip,
            outcome: Outcome::Unknown,
        })
    }
}

/// One password check in progress: while it lasts, no other check of the same account
/// or from the same address starts (so parallel guesses cannot all slip in before the
/// first failure locks them out). Its outcome is recorded when it ends; one that ends
/// without an answer (the store failed, the client hung up) taught nobody anything.
struct Attempt {
    guessing: Arc<Mutex<Guessing>>,
    key: String,
    ip: Option<IpAddr>,
    outcome: Outcome,
}

impl Attempt {
    fn finish(&mut self, outcome: Outcome) {
        self.outcome = outcome;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut guessing = self.guessing.lock().unwrap();
        guessing.end(&self.key, self.ip, self.outcome, Instant::now());
    }
}

fn stored(session: &Session) -> StoredSession {
    StoredSession {
        token_hash: session.token_hash(),
        name: session.name().to_owned(),
        account: !session.is_guest(),
        last_active_ms: unix_ms(),
    }
}

fn hashes(sessions: &[Session]) -> Vec<TokenHash> {
    sessions.iter().map(Session::token_hash).collect()
}

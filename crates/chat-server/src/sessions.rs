//! Who is speaking. `Join` (a guest), `SignIn` and `Register` (an account) each start a
//! session and hand out its secret token; later calls present it as
//! `authorization: Bearer <token>` and the server takes the sender's name from it, so
//! nobody can post as someone who is signed in. A guest's name is held while its session
//! lives; a registered name is its account's for good, for any number of its sessions.
//!
//! This registry is the fast path: every call is checked here, in memory, under one std
//! Mutex held for a map lookup and never across an await. `accounts` mirrors it into the
//! database (`Swept` says what to write), so a restart signs nobody out. Each session's
//! rate limiters have their own lock, so posting never waits on the registry. On a
//! database several servers share, this registry is each server's cache of it: `adopt`
//! takes in a session another server started, and `forget_tokens` / `mark_registered`
//! take in what another server ended or registered.
use std::{
    borrow::Cow,
    collections::{HashMap, HashSet},
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::{
    error::ChatError,
    limits::{Limits, RetryAfter},
    store::StoredSession,
    validate,
    wall_clock::unix_ms,
};

mod session;
pub mod token;

pub use session::{Kind, Session};
use token::{bearer_token, new_token, TokenHash};

/// Activity is written to the database at most this often per session: a restart may
/// take up to this much off a session's idle time, never more.
pub const RECORD_ACTIVITY_EVERY: Duration = Duration::from_secs(60);

/// A refusal for `--max-sessions` says to come back after this long: sessions free up
/// as they idle out, which the sweeper notices every few seconds.
const SESSIONS_FULL_RETRY: Duration = Duration::from_secs(30);

/// The form names are compared in, and the key of the accounts table: equal for names
/// that are the same person (see `chat_proto::names::key`).
pub fn name_key(name: &str) -> String {
    chat_proto::names::key(name)
}

/// The session registry; cheap to clone, every clone sees the same sessions.
#[derive(Clone)]
pub struct Sessions {
    state: Arc<Mutex<State>>,
    limits: Arc<Limits>,
}

/// A session just started: its handle, and the token to give the client (once).
pub struct Started {
    pub session: Session,
    pub token: String,
}

/// Leaves the token out, so logging it never leaks it.
impl fmt::Debug for Started {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Started")
            .field("session", &self.session)
            .finish_non_exhaustive()
    }
}

/// What the database should learn after a sweep.
#[derive(Debug, Default)]
pub struct Swept {
    /// Sessions that idled out.
    pub ended: Vec<Session>,
    /// Sessions active since their activity was last recorded, with their last activity
    /// in ms since the Unix epoch.
    pub active: Vec<(TokenHash, i64)>,
}

struct State {
    /// Every live session, by the hash of its token.
    by_token: HashMap<TokenHash, Entry>,
    /// `name_key` -> the live sessions speaking as it: one for a guest, any number for
    /// an account.
    by_name: HashMap<String, Vec<TokenHash>>,
    /// `name_key` of every registered account, so a guest or a token-less client is
    /// refused a registered name without a database read.
    registered: HashSet<String>,
    next_id: u64,
}

struct Entry {
    session: Session,
    /// When it idles out, unless a stream is open: last activity plus its kind's idle
    /// time. Kept as a deadline so a session restored from the database never needs an
    /// instant from before this process (or the machine) started.
    idle_deadline: Instant,
    /// `idle_deadline` as last written to the database.
    recorded_deadline: Instant,
    open_streams: usize,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        self.open_streams == 0 && now >= self.idle_deadline
    }
}

impl State {
    /// The live session with this token hash, ended first if it has idled out.
    fn live(&mut self, hash: &TokenHash, now: Instant) -> Option<&mut Entry> {
        if self.by_token.get(hash)?.expired(now) {
            self.end(hash);
            return None;
        }
        self.by_token.get_mut(hash)
    }

    /// The live sessions holding `key` (expired ones ended on the way).
    fn holders(&mut self, key: &str, now: Instant) -> Vec<Session> {
        let hashes = self.by_name.get(key).cloned().unwrap_or_default();
        hashes
            .iter()
            .filter_map(|hash| self.live(hash, now).map(|e| e.session.clone()))
            .collect()
    }

    fn end(&mut self, hash: &TokenHash) -> Option<Session> {
        let entry = self.by_token.remove(hash)?;
        let key = name_key(entry.session.name());
        if let Some(hashes) = self.by_name.get_mut(&key) {
            hashes.retain(|h| h != hash);
            if hashes.is_empty() {
                self.by_name.remove(&key);
            }
        }
        entry.session.end();
        Some(entry.session)
    }

    /// Adds a session whose row the database has (or is being given) as of now.
    fn insert(&mut self, session: Session, idle_deadline: Instant) {
        let hash = session.token_hash();
        self.by_name
            .entry(name_key(session.name()))
            .or_default()
            .push(hash);
        self.by_token.insert(
            hash,
            Entry {
                session,
                idle_deadline,
                recorded_deadline: idle_deadline,
                open_streams: 0,
            },
        );
    }
}

impl Sessions {
    pub fn new(limits: Limits) -> Self {
        Sessions {
            state: Arc::new(Mutex::new(State {
                by_token: HashMap::new(),
                by_name: HashMap::new(),
                registered: HashSet::new(),
                next_id: 1,
            })),
            limits: Arc::new(limits),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// How long a session of this kind may go without a call or an open stream.
    pub fn idle_time(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Guest => self.limits.session_idle,
            Kind::Account => self.limits.account_session_idle,
        }
    }

    /// Takes in what the database held at start: every registered name, and the sessions
    /// that were live. Returns the stored sessions that have idled out meanwhile (or whose
    /// guest name has since been registered), for the caller to delete.
    pub fn restore(
        &self,
        registered: impl IntoIterator<Item = String>,
        stored: Vec<StoredSession>,
    ) -> Vec<TokenHash> {
        let now = Instant::now();
        let now_ms = unix_ms();
        let mut state = self.state.lock().unwrap();
        state.registered.extend(registered);
        let mut gone = Vec::new();
        for row in stored {
            let kind = if row.account {
                Kind::Account
            } else {
                Kind::Guest
            };
            let idle = self.idle_time(kind);
            let age =
                Duration::from_millis(now_ms.saturating_sub(row.last_active_ms).max(0) as u64);
            let key = name_key(&row.name);
            let registered = state.registered.contains(&key);
            // A guest holds its name alone; an account session needs its account.
            let valid = match kind {
                Kind::Guest => !registered && !state.by_name.contains_key(&key),
                Kind::Account => registered,
            };
            if age >= idle || !valid {
                gone.push(row.token_hash);
                continue;
            }
            let id = state.next_id;
            state.next_id += 1;
            let session = Session::new(id, &row.name, kind, row.token_hash, &self.limits, now);
            state.insert(session, now + (idle - age));
        }
        gone
    }

    /// Takes in a session another server started (found in the shared database by its
    /// token's hash), as of this call: from now on this server knows it, and an account
    /// session marks its name registered here. Refused as `Unauthenticated` when it has
    /// idled out or when a guest session's name is held here by someone else; refused at
    /// `--max-sessions` as a new session would be.
    pub fn adopt(&self, row: StoredSession) -> Result<Session, ChatError> {
        let now = Instant::now();
        let kind = match row.account {
            true => Kind::Account,
            false => Kind::Guest,
        };
        let idle = self.idle_time(kind);
        let age = Duration::from_millis(unix_ms().saturating_sub(row.last_active_ms).max(0) as u64);
        if age >= idle {
            return Err(ChatError::Unauthenticated);
        }
        let key = name_key(&row.name);
        let mut state = self.state.lock().unwrap();
        // Another call may have adopted it meanwhile.
        if let Some(entry) = state.live(&row.token_hash, now) {
            entry.idle_deadline = now + idle;
            return Ok(entry.session.clone());
        }
        match kind {
            Kind::Account => {
                state.registered.insert(key);
            }
            Kind::Guest => {
                if state.registered.contains(&key) || !state.holders(&key, now).is_empty() {
                    return Err(ChatError::Unauthenticated);
                }
            }
        }
        let limit = self.limits.max_sessions;
        if state.by_token.len() >= limit {
            return Err(ChatError::TooManySessions {
                limit,
                retry_after: RetryAfter(SESSIONS_FULL_RETRY),
            });
        }
        let id = state.next_id;
        state.next_id += 1;
        let session = Session::new(id, &row.name, kind, row.token_hash, &self.limits, now);
        state.insert(session.clone(), now + (idle - age));
        // This call is activity; the sweep records it (the row has the older time).
        if let Some(entry) = state.by_token.get_mut(&row.token_hash) {
            entry.idle_deadline = now + idle;
        }
        tracing::debug!(
            name = row.name,
            session = id,
            ?kind,
            "session taken in from the database"
        );
        Ok(session)
    }

    /// Ends, here, the sessions with these token hashes, if this server holds them: for
    /// sessions another server ended (Leave, SignOutEverywhere, ChangePassword), whose
    /// rows are gone from the shared database already. Their open streams end at once.
    /// Returns how many it held.
    pub fn forget_tokens(&self, hashes: &[TokenHash]) -> usize {
        let mut state = self.state.lock().unwrap();
        hashes
            .iter()
            .filter(|hash| state.end(hash).is_some())
            .count()
    }

    /// Records that `name` belongs to an account, registered through another server: no
    /// guest or token-less client here may use it from now on.
    pub fn mark_registered(&self, name: &str) {
        self.state.lock().unwrap().registered.insert(name_key(name));
    }

    /// Starts a guest session holding `name` (already validated). Refused for a
    /// registered name, while a live session holds it (one that has idled out is ended on
    /// the spot), and when the server has `--max-sessions` already.
    pub fn join(&self, name: &str) -> Result<Started, ChatError> {
        let now = Instant::now();
        let key = name_key(name);
        let mut state = self.state.lock().unwrap();
        if state.registered.contains(&key) {
            return Err(ChatError::NameRegistered(name.to_owned()));
        }
        if !state.holders(&key, now).is_empty() {
            return Err(ChatError::NameTaken(name.to_owned()));
        }
        self.start(&mut state, name, Kind::Guest, now)
    }

    /// Starts a session of the account registered as `name` (the caller checked its
    /// password). Refused only when the server has `--max-sessions` already.
    pub fn sign_in(&self, name: &str) -> Result<Started, ChatError> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        self.start(&mut state, name, Kind::Account, now)
    }

    fn start(
        &self,
        state: &mut State,
        name: &str,
        kind: Kind,
        now: Instant,
    ) -> Result<Started, ChatError> {
        let limit = self.limits.max_sessions;
        if state.by_token.len() >= limit {
            return Err(ChatError::TooManySessions {
                limit,
                retry_after: RetryAfter(SESSIONS_FULL_RETRY),
            });
        }
        let token = new_token();
        let id = state.next_id;
        state.next_id += 1;
        let session = Session::new(id, name, kind, TokenHash::of(&token), &self.limits, now);
        state.insert(session.clone(), now + self.idle_time(kind));
        tracing::debug!(name, session = id, ?kind, "session started");
        Ok(Started { session, token })
    }

    /// Whether `name` belongs to an account.
    pub fn is_registered(&self, name: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .registered
            .contains(&name_key(name))
    }

    /// Marks `name` registered, before the account is written, so no guest can take it
    /// meanwhile. Refused when it is registered already, or held by a live session other
    /// than `own` (the caller's). True when `own` is the guest session holding it: the
    /// account takes the name over from it (the caller ends it once the account exists).
    pub fn claim(&self, name: &str, own: Option<&Session>) -> Result<bool, ChatError> {
        let now = Instant::now();
        let key = name_key(name);
        let mut state = self.state.lock().unwrap();
        if state.registered.contains(&key) {
            return Err(ChatError::NameRegistered(name.to_owned()));
        }
        let holders = state.holders(&key, now);
        let mine = |s: &Session| own.is_some_and(|own| own.id() == s.id());
        if holders.iter().any(|s| !mine(s)) {
            return Err(ChatError::NameTaken(name.to_owned()));
        }
        state.registered.insert(key);
        Ok(!holders.is_empty())
    }

    /// Undoes `claim` when the account could not be written.
    pub fn unclaim(&self, name: &str) {
        self.state
            .lock()
            .unwrap()
            .registered
            .remove(&name_key(name));
    }

    /// The hash of the call's `authorization: Bearer <token>`; `None` when there is no
    /// such header (a legacy client).
    pub fn token_hash(metadata: &MetadataMap) -> Result<Option<TokenHash>, ChatError> {
        let Some(value) = metadata.get("authorization") else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or(ChatError::AuthorizationMalformed)?;
        Ok(Some(TokenHash::of(token)))
    }

    /// The caller's session, from its `authorization: Bearer <token>` metadata; `None`
    /// when there is no such header (a legacy client). A live session counts this call
    /// as activity. An unknown or expired token is refused rather than treated as
    /// anonymous, so a client whose session lapsed learns it must join again. (With a
    /// shared database, `Accounts::authenticate` then looks for it there.)
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Option<Session>, ChatError> {
        let Some(hash) = Self::token_hash(metadata)? else {
            return Ok(None);
        };
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        let entry = state.live(&hash, now).ok_or(ChatError::Unauthenticated)?;
        let idle = self.idle_time(entry.session.kind());
        entry.idle_deadline = now + idle;
        Ok(Some(entry.session.clone()))
    }

    /// For a token-less (legacy) post as `name`: refused for a registered name, and while
    /// a live session holds it.
    pub fn check_bare_name(&self, name: &str) -> Result<(), ChatError> {
        let now = Instant::now();
        let key = name_key(name);
        let mut state = self.state.lock().unwrap();
        if state.registered.contains(&key) {
            return Err(ChatError::NameRegisteredBare(name.to_owned()));
        }
        match state.holders(&key, now).is_empty() {
            true => Ok(()),
            false => Err(ChatError::NameHeld(name.to_owned())),
        }
    }

    /// The sender of a post: the session's name when a token came with the call (a
    /// different name in the body is refused), else the body's (as shown: trimmed, NFKC),
    /// if no session or account holds it. Takes one message from a session's allowance; a
    /// token-less sender's allowance is its address's (`AddressBudgets`), which the
    /// caller takes.
    pub fn sender<'a>(
        &self,
        session: Option<&'a Session>,
        body_name: &str,
    ) -> Result<Sender<'a>, ChatError> {
        let sender = match session {
            Some(session) => {
                let same = body_name.is_empty()
                    || body_name == session.name()
                    || validate::username(body_name).is_ok_and(|n| n == session.name());
                if !same {
                    return Err(ChatError::NameMismatch {
                        signed_in: session.name().to_owned(),
                        asked: body_name.to_owned(),
                    });
                }
                Sender {
                    name: Cow::Borrowed(session.name()),
                    guest: session.is_guest(),
                }
            }
            None => {
                let name = validate::username(body_name)?;
                self.check_bare_name(&name)?;
                Sender {
                    name: Cow::Owned(name),
                    guest: true,
                }
            }
        };
        if let Some(session) = session {
            session.check_message_rate()?;
        }
        Ok(sender)
    }

    /// Ends the session (a guest's name is free again). Streams it still has open see the
    /// session as ended on their next rate check. False if it had ended already.
    pub fn leave(&self, session: &Session) -> bool {
        let ended = self.state.lock().unwrap().end(&session.token_hash());
        if ended.is_some() {
            tracing::debug!(
                name = session.name(),
                session = session.id(),
                "session left"
            );
        }
        ended.is_some()
    }

    /// Every live session speaking as `name`, except `keep`.
    pub fn live_of(&self, name: &str, keep: Option<&Session>) -> Vec<Session> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        let mut all = state.holders(&name_key(name), now);
        all.retain(|s| keep.is_none_or(|keep| keep.id() != s.id()));
        all
    }

    /// Counts a stream the session opens; drop the guard when it closes. While any is
    /// open the session cannot idle out.
    pub fn open_stream(&self, session: &Session) -> Result<StreamGuard, ChatError> {
        let now = Instant::now();
        let limit = self.limits.max_streams_per_session;
        let mut state = self.state.lock().unwrap();
        let entry = state
            .live(&session.token_hash(), now)
            .ok_or(ChatError::Unauthenticated)?;
        if entry.open_streams >= limit {
            return Err(ChatError::TooManyStreams { limit });
        }
        entry.open_streams += 1;
        Ok(StreamGuard {
            sessions: self.clone(),
            session: session.clone(),
        })
    }

    /// How many sessions are live (or idled out and not yet swept).
    pub fn len(&self) -> usize {
        self.state.lock().unwrap().by_token.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Ends every session that has idled out, and lists those whose activity the
    /// database should learn (active for `RECORD_ACTIVITY_EVERY` since it last did; a
    /// session with a stream open counts as active now).
    pub fn sweep(&self) -> Swept {
        let now = Instant::now();
        let now_ms = unix_ms();
        let mut state = self.state.lock().unwrap();
        let mut swept = Swept::default();
        let mut expired = Vec::new();
        for (hash, entry) in state.by_token.iter_mut() {
            if entry.expired(now) {
                expired.push(*hash);
                continue;
            }
            let idle = self.idle_time(entry.session.kind());
            let deadline = match entry.open_streams {
                0 => entry.idle_deadline,
                _ => entry.idle_deadline.max(now + idle),
            };
            if deadline.saturating_duration_since(entry.recorded_deadline) >= RECORD_ACTIVITY_EVERY
            {
                entry.recorded_deadline = deadline;
                // Last activity = deadline - idle, as wall-clock time.
                let unused = idle.saturating_sub(deadline.saturating_duration_since(now));
                swept
                    .active
                    .push((*hash, now_ms - unused.as_millis() as i64));
            }
        }
        swept.ended = expired.iter().filter_map(|hash| state.end(hash)).collect();
        swept
    }

    fn stream_closed(&self, session: &Session) {
        let mut state = self.state.lock().unwrap();
        let idle = self.idle_time(session.kind());
        // Gone if it ended meanwhile; a newer holder of the name has its own entry.
        let Some(entry) = state.by_token.get_mut(&session.token_hash()) else {
            return;
        };
        entry.open_streams -= 1;
        if entry.open_streams == 0 {
            entry.idle_deadline = Instant::now() + idle;
        }
    }
}

/// Who a post is from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender<'a> {
    pub name: Cow<'a, str>,
    /// A guest session or a token-less client: the same name later may be someone else.
    pub guest: bool,
}

/// An open stream of a session; dropping it closes the count (and, for the session's
/// last stream, restarts its idle clock).
pub struct StreamGuard {
    sessions: Sessions,
    session: Session,
}

impl fmt::Debug for StreamGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("StreamGuard").field(&self.session).finish()
    }
}

impl StreamGuard {
    pub fn session(&self) -> &Session {
        &self.session
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.sessions.stream_closed(&self.session);
    }
}

#[cfg(test)]
mod tests;

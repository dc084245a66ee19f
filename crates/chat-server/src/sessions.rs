//! Who is speaking. `Join` trades a name for a secret token; later calls present it as
//! `authorization: Bearer <token>` and the server takes the sender's name from it, so
//! nobody can post as someone who is signed in. A session ends on `Leave`, or after
//! `Limits::session_idle` with no call and no open stream, and that frees its name.
//!
//! The registry is one std Mutex held for a map lookup and never across an await. Each
//! session's rate limiters have their own lock, so posting never waits on the registry
//! or on anyone else's session.
use std::{
    collections::HashMap,
    fmt,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::time::Instant;
use tonic::metadata::MetadataMap;

use crate::{
    error::ChatError,
    limits::{Action, Limits, RateLimiter, RetryAfter},
    shutdown::Shutdown,
    validate,
};

/// Random bytes per token: 256 bits, twice the 128 the protocol promises.
const TOKEN_BYTES: usize = 32;

/// The session registry; cheap to clone, every clone sees the same sessions.
#[derive(Clone)]
pub struct Sessions {
    state: Arc<Mutex<State>>,
    limits: Arc<Limits>,
}

struct State {
    /// Keyed by `name_key`: "Ann" and "ann" are one name, so nobody can pass for
    /// someone else by changing case.
    by_name: HashMap<String, Entry>,
    /// Token -> name. Each live session is in both maps.
    names_by_token: HashMap<String, String>,
    next_id: u64,
}

struct Entry {
    session: Session,
    last_active: Instant,
    open_streams: usize,
}

impl Entry {
    fn expired(&self, now: Instant, idle: Duration) -> bool {
        self.open_streams == 0 && now.saturating_duration_since(self.last_active) >= idle
    }
}

/// The form names are compared in. Valid names are ASCII (see `validate::username`).
fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl State {
    /// The live session holding `name`, ending it first if it has idled out.
    fn live(&mut self, name: &str, now: Instant, idle: Duration) -> Option<&mut Entry> {
        let name = &name_key(name);
        if self.by_name.get(name)?.expired(now, idle) {
            self.end(name);
            return None;
        }
        self.by_name.get_mut(name)
    }

    fn end(&mut self, name: &str) -> Option<Session> {
        let entry = self.by_name.remove(&name_key(name))?;
        self.names_by_token.remove(entry.session.token());
        entry.session.0.ended.store(true, Ordering::Relaxed);
        Some(entry.session)
    }
}

impl Sessions {
    pub fn new(limits: Limits) -> Self {
        Sessions {
            state: Arc::new(Mutex::new(State {
                by_name: HashMap::new(),
                names_by_token: HashMap::new(),
                next_id: 1,
            })),
            limits: Arc::new(limits),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts a session holding `name` (already validated). Refused while a live session
    /// holds it; one that has idled out is ended on the spot.
    pub fn join(&self, name: &str) -> Result<Session, ChatError> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        if state.live(name, now, self.limits.session_idle).is_some() {
            return Err(ChatError::NameTaken(name.to_owned()));
        }
        let id = state.next_id;
        state.next_id += 1;
        let session = Session::new(id, name, &self.limits, now);
        state
            .names_by_token
            .insert(session.token().to_owned(), name.to_owned());
        state.by_name.insert(
            name_key(name),
            Entry {
                session: session.clone(),
                last_active: now,
                open_streams: 0,
            },
        );
        tracing::debug!(name, id, "session started");
        Ok(session)
    }

    /// The caller's session, from its `authorization: Bearer <token>` metadata; `None`
    /// when there is no such header (a legacy client). A live session counts this call
    /// as activity. An unknown or expired token is refused rather than treated as
    /// anonymous, so a client whose session lapsed learns it must join again.
    pub fn authenticate(&self, metadata: &MetadataMap) -> Result<Option<Session>, ChatError> {
        let Some(value) = metadata.get("authorization") else {
            return Ok(None);
        };
        let token = value
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or(ChatError::AuthorizationMalformed)?;
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        let name = state
            .names_by_token
            .get(token)
            .cloned()
            .ok_or(ChatError::Unauthenticated)?;
        let entry = state
            .live(&name, now, self.limits.session_idle)
            .ok_or(ChatError::Unauthenticated)?;
        entry.last_active = now;
        Ok(Some(entry.session.clone()))
    }

    /// For a token-less (legacy) post as `name`: refused while a live session holds it.
    pub fn check_bare_name(&self, name: &str) -> Result<(), ChatError> {
        let now = Instant::now();
        let mut state = self.state.lock().unwrap();
        match state.live(name, now, self.limits.session_idle) {
            Some(_) => Err(ChatError::NameHeld(name.to_owned())),
            None => Ok(()),
        }
    }

    /// The sender's name for a post: the session's when a token came with the call (a
    /// different name in the body is refused), else the body's, if no session holds it.
    /// Takes one message from a session's allowance; a token-less sender's allowance is
    /// its address's (`AddressBudgets`), which the caller takes.
    pub fn sender<'a>(
        &self,
        session: Option<&'a Session>,
        body_name: &'a str,
    ) -> Result<&'a str, ChatError> {
        let name = match session {
            Some(session) => {
                if !body_name.is_empty() && body_name != session.name() {
                    return Err(ChatError::NameMismatch {
                        signed_in: session.name().to_owned(),
                        asked: body_name.to_owned(),
                    });
                }
                session.name()
            }
            None => {
                let name = validate::username(body_name)?;
                self.check_bare_name(name)?;
                name
            }
        };
        if let Some(session) = session {
            session.check_message_rate()?;
        }
        Ok(name)
    }

    /// Ends the session and frees its name. Streams it still has open see the session as
    /// ended on their next rate check.
    pub fn leave(&self, session: &Session) {
        let mut state = self.state.lock().unwrap();
        if state
            .by_name
            .get(&name_key(session.name()))
            .is_some_and(|entry| entry.session.id() == session.id())
        {
            state.end(session.name());
            tracing::debug!(name = session.name(), id = session.id(), "session left");
        }
    }

    /// Counts a stream the session opens; drop the guard when it closes. While any is
    /// open the session cannot idle out.
    pub fn open_stream(&self, session: &Session) -> Result<StreamGuard, ChatError> {
        let now = Instant::now();
        let limit = self.limits.max_streams_per_session;
        let mut state = self.state.lock().unwrap();
        let entry = state
            .live(session.name(), now, self.limits.session_idle)
            .filter(|entry| entry.session.id() == session.id())
            .ok_or(ChatError::Unauthenticated)?;
        if entry.open_streams >= limit {
            return Err(ChatError::TooManyStreams { limit });
        }
        entry.open_streams += 1;
        entry.last_active = now;
        Ok(StreamGuard {
            sessions: self.clone(),
            session: session.clone(),
        })
    }

    /// Ends every session that has idled out and returns them (their names are free
    /// again).
    pub fn sweep(&self) -> Vec<Session> {
        let now = Instant::now();
        let idle = self.limits.session_idle;
        let mut state = self.state.lock().unwrap();
        let expired: Vec<String> = state
            .by_name
            .iter()
            .filter(|(_, entry)| entry.expired(now, idle))
            .map(|(name, _)| name.clone())
            .collect();
        expired.iter().filter_map(|name| state.end(name)).collect()
    }

    /// Sweeps every `period` until shutdown. Expiry is also checked whenever a name or
    /// token is used, so this only bounds how long a forgotten session occupies memory.
    pub async fn sweep_every(self, period: Duration, shutdown: Shutdown) {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    for session in self.sweep() {
                        tracing::debug!(name = session.name(), id = session.id(), "session expired");
                    }
                }
                _ = shutdown.wait() => return,
            }
        }
    }

    fn stream_closed(&self, session: &Session) {
        let mut state = self.state.lock().unwrap();
        let Some(entry) = state.by_name.get_mut(&name_key(session.name())) else {
            return;
        };
        // The name may belong to a newer session by now; its streams are its own.
        if entry.session.id() != session.id() {
            return;
        }
        entry.open_streams -= 1;
        if entry.open_streams == 0 {
            entry.last_active = Instant::now();
        }
    }
}

/// One signed-in person: a name, the token that proves it, and their own rate limits.
/// Cheap to clone.
#[derive(Clone)]
pub struct Session(Arc<SessionInner>);

struct SessionInner {
    id: u64,
    name: String,
    token: String,
    ended: AtomicBool,
    messages: Mutex<RateLimiter>,
    typing: Mutex<RateLimiter>,
}

impl Session {
    fn new(id: u64, name: &str, limits: &Limits, now: Instant) -> Self {
        Session(Arc::new(SessionInner {
            id,
            name: name.to_owned(),
            token: new_token(),
            ended: AtomicBool::new(false),
            messages: Mutex::new(RateLimiter::new(
                limits.max_messages_per_sec,
                limits.message_burst,
                now,
            )),
            typing: Mutex::new(RateLimiter::new(
                limits.typing_per_sec,
                limits.typing_burst,
                now,
            )),
        }))
    }

    /// Unique among the sessions of this server run.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// The secret for Join's response. Never log it.
    pub fn token(&self) -> &str {
        &self.0.token
    }

    /// True once it has left or expired; a stream still holding it must stop speaking.
    pub fn is_ended(&self) -> bool {
        self.0.ended.load(Ordering::Relaxed)
    }

    /// Takes one message from this session's allowance. Refused once the session has
    /// ended, so a stream that outlives its session cannot go on posting under the name.
    pub fn check_message_rate(&self) -> Result<(), ChatError> {
        self.check(&self.0.messages, Action::Messages)
    }

    /// Takes one typing notification from this session's allowance.
    pub fn check_typing_rate(&self) -> Result<(), ChatError> {
        self.check(&self.0.typing, Action::Typing)
    }

    fn check(&self, limiter: &Mutex<RateLimiter>, action: Action) -> Result<(), ChatError> {
        if self.is_ended() {
            return Err(ChatError::Unauthenticated);
        }
        let checked = limiter.lock().unwrap().check(Instant::now());
        checked.map_err(|wait| rate_limited(action, wait))
    }
}

/// Leaves the token out, so logging a session never leaks it.
impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
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

fn rate_limited(what: Action, wait: Duration) -> ChatError {
    ChatError::RateLimited {
        what,
        retry_after: RetryAfter(wait),
    }
}

/// `Bearer <token>`; the scheme is case-insensitive (RFC 9110), the token is not.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Hex of `TOKEN_BYTES` from the thread-local CSPRNG (ChaCha, seeded and reseeded from
/// the OS), which is URL-safe and needs no extra crate.
fn new_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;

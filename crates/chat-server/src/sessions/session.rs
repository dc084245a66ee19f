//! One session: who it speaks as, whether that is a guest or an account, and its own rate
//! limits. Shared (an `Arc`) by the registry and every request and stream using it, so
//! ending it in the registry is seen at once by a stream that still holds it.
use std::{
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::token::TokenHash;
use crate::{
    error::ChatError,
    limits::{Action, Limits, RateLimiter, RetryAfter},
};

/// Guest or account; decides how long the session may idle and the `guest` flag of what
/// it posts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Joined under an unregistered name, held only while the session lives.
    Guest,
    /// Signed in to (or registered) an account: the name is the account's for good.
    Account,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct Session(Arc<SessionInner>);

struct SessionInner {
    id: u64,
    name: String,
    kind: Kind,
    token_hash: TokenHash,
    /// Cancelled when the session ends, which also ends the streams it has open.
    ended: CancellationToken,
    messages: Mutex<RateLimiter>,
    typing: Mutex<RateLimiter>,
}

impl Session {
    pub(super) fn new(
        id: u64,
        name: &str,
        kind: Kind,
        token_hash: TokenHash,
        limits: &Limits,
        now: Instant,
    ) -> Self {
        Session(Arc::new(SessionInner {
            id,
            name: name.to_owned(),
            kind,
            token_hash,
            ended: CancellationToken::new(),
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

    pub fn kind(&self) -> Kind {
        self.0.kind
    }

    pub fn is_guest(&self) -> bool {
        self.0.kind == Kind::Guest
    }

    pub fn token_hash(&self) -> TokenHash {
        self.0.token_hash
    }

    /// True once it has left, expired or been signed out; a stream still holding it must
    /// stop speaking.
    pub fn is_ended(&self) -> bool {
        self.0.ended.is_cancelled()
    }

    pub(super) fn end(&self) {
        self.0.ended.cancel();
    }

    /// Resolves when the session ends (Leave, a sign-out everywhere, a password change
    /// elsewhere), so a stream it holds open ends with it instead of going on reading the
    /// room for someone who was signed out.
    pub fn ended(&self) -> WaitForCancellationFutureOwned {
        self.0.ended.clone().cancelled_owned()
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

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("name", &self.name())
            .field("kind", &self.kind())
            .field("ended", &self.is_ended())
            .finish_non_exhaustive()
    }
}

fn rate_limited(what: Action, wait: Duration) -> ChatError {
    ChatError::RateLimited {
        what,
        retry_after: RetryAfter(wait),
    }
}

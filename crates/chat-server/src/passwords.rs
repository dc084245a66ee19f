//! Passwords: the rules for a new one, and Argon2id hashing, which is slow and takes
//! 19 MiB on purpose (OWASP's m=19456 KiB, t=2, p=1) so a stolen database is expensive
//! to guess through. That cost is the server's too, so hashes run on tokio's blocking
//! pool, at most `MAX_HASHING` at once (bounding memory), with a short queue behind them;
//! past it a request is told to come back rather than waiting without bound.
use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Algorithm, Argon2, Params, Version,
};
use tokio::sync::Semaphore;

use crate::{error::ChatError, limits::RetryAfter};

pub const MIN_PASSWORD_CHARS: usize = 8;
/// Hashing cost does not grow with length in any way that matters, but a request this big
/// has no business being a password.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// Argon2id memory in KiB, passes and lanes (OWASP's first recommended setting).
pub const ARGON2_MEMORY_KIB: u32 = 19_456;
pub const ARGON2_PASSES: u32 = 2;
pub const ARGON2_LANES: u32 = 1;

/// Hashes running at once: each holds `ARGON2_MEMORY_KIB`, so 4 take 76 MiB at most.
const MAX_HASHING: usize = 4;
/// Requests waiting for a turn, beyond which they are refused with `PasswordsBusy`.
const MAX_WAITING: usize = 64;
/// What a refused one is told to wait: about the time the queue takes to drain.
const BUSY_RETRY: Duration = Duration::from_secs(1);

/// Checks a new password (Register, ChangePassword) against the rules.
pub fn check_new(password: &str) -> Result<&str, ChatError> {
    check_length(password)?;
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(ChatError::PasswordTooShort(chars));
    }
    Ok(password)
}

/// Checks a password being tried (SignIn, the current one of ChangePassword): only what
/// could not be anyone's password is refused before it reaches the hasher.
pub fn check_length(password: &str) -> Result<&str, ChatError> {
    if password.is_empty() {
        return Err(ChatError::PasswordMissing);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ChatError::PasswordTooLong(password.len()));
    }
    Ok(password)
}

/// The hasher; cheap to clone, every clone shares the same turns.
#[derive(Clone)]
pub struct Passwords {
    turns: Arc<Semaphore>,
    waiting: Arc<AtomicUsize>,
}

impl Default for Passwords {
    fn default() -> Self {
        Passwords {
            turns: Arc::new(Semaphore::new(MAX_HASHING)),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl Passwords {
    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with a fresh random
    /// 128-bit salt: everything needed to check the password later, and nothing more.
    pub async fn hash(&self, password: &str) -> Result<String, ChatError> {
        let password = password.to_owned();
        self.run(move || {
            let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
                .expect("16 bytes are a valid salt");
            hasher()
                .hash_password(password.as_bytes(), &salt)
                .map(|hash| hash.to_string())
                .expect("Argon2 with fixed valid parameters cannot fail")
        })
        .await
    }

    /// Whether `password` is the one `phc` was made from. The parameters come from the
    /// PHC string, so hashes made under older settings still verify.
    pub async fn verify(&self, password: &str, phc: &str) -> Result<bool, ChatError> {
        let (password, phc) = (password.to_owned(), phc.to_owned());
        self.run(move || match PasswordHash::new(&phc) {
            Ok(parsed) => hasher()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(err) => {
                tracing::error!(%err, "a stored password hash does not parse; nobody can sign in to that account");
                false
            }
        })
        .await
    }

    /// Runs `work` on the blocking pool once a turn is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ChatError> {
        let busy = ChatError::PasswordsBusy {
            retry_after: RetryAfter(BUSY_RETRY),
        };
        let turn = match Arc::clone(&self.turns).try_acquire_owned() {
            Ok(turn) => turn,
            Err(_) => {
                // Counted out by the guard, also when the caller gives up while waiting.
                let _waiting = Waiting::join(&self.waiting).ok_or(busy)?;
                let turn = Arc::clone(&self.turns).acquire_owned().await;
                turn.expect("the semaphore is never closed")
            }
        };
        let done = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            work()
        })
        .await;
        match done {
            Ok(value) => Ok(value),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // The runtime is shutting down.
            Err(_) => Err(ChatError::ShuttingDown),
        }
    }
}

/// One place in the queue of requests waiting for a turn.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    /// None when the queue is full.
    fn join(count: &'a AtomicUsize) -> Option<Self> {
        let place = Waiting(count);
        (count.fetch_add(1, Ordering::AcqRel) < MAX_WAITING).then_some(place)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// 128 random bits as text: a password nobody knows.
pub fn random_password() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn hasher() -> Argon2<'static> {
    let params = Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
        .expect("valid Argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_passwords_need_8_characters_and_at_most_1024_bytes() {
        assert_eq!(check_new(""), Err(ChatError::PasswordMissing));
        assert_eq!(check_new("seven77"), Err(ChatError::PasswordTooShort(7)));
        // Characters, not bytes: eight of them, sixteen bytes.
        assert_eq!(check_new("éééééééé"), Ok("éééééééé"));
        let long = "x".repeat(MAX_PASSWORD_BYTES + 1);
        assert_eq!(check_new(&long), Err(ChatError::PasswordTooLong(1025)));
        assert!(check_new(&long[1..]).is_ok());
        // Trying one: short is fine (it is just wrong), huge and empty are not.
        assert_eq!(check_length("short"), Ok("short"));
        assert_eq!(check_length(&long), Err(ChatError::PasswordTooLong(1025)));
    }

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_is_salted() {
        let passwords = Passwords::default();
        let phc = passwords.hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(passwords.verify("correct horse", &phc).await.unwrap());
        assert!(!passwords.verify("correct horsE", &phc).await.unwrap());
        assert!(!passwords
            .verify("correct horse", "not a hash")
            .await
            .unwrap());
        let again = passwords.hash("correct horse").await.unwrap();
        assert_ne!(phc, again, "a fresh salt each time");
    }
}

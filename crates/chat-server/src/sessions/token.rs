//! Session tokens: 256 random bits handed out once, and the SHA-256 of each, which is all
//! the server keeps (in memory and in the database), so a copy of the database or a memory
//! dump of the registry is no key to anyone's session.
//!
//! A fast hash is right here, unlike for passwords: a token is 256 uniformly random bits,
//! so there is no dictionary to try and guessing one from its hash means searching 2^256
//! values. Slow hashes such as Argon2 only help when the secret itself is guessable.
use sha2::{Digest, Sha256};

/// Random bytes per token: 256 bits, twice the 128 the protocol promises.
const TOKEN_BYTES: usize = 32;

/// The SHA-256 of a token: the key sessions are found and stored by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }
}

/// Leaves the hash out too: it is not a secret, but nothing needs it in a log.
impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// Hex of `TOKEN_BYTES` from the thread-local CSPRNG (ChaCha, seeded and reseeded from
/// the OS), which is URL-safe and needs no extra crate.
pub fn new_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `Bearer <token>`; the scheme is case-insensitive (RFC 9110), the token is not.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_the_token_text() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = TokenHash::of("abc");
        assert_eq!(abc.0[..4], [0xba, 0x78, 0x16, 0xbf]);
        assert_eq!(abc.0[28..], [0xf2, 0x00, 0x15, 0xad]);
        assert_ne!(TokenHash::of("abd"), abc);
    }
}

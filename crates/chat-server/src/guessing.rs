//! Slows password guessing, per account and per client address: each wrong password
//! locks further tries for a while, 1 s after the first, doubling with each one after,
//! up to 15 min. The lock comes before the hash, so a locked try costs the server
//! nothing. A right password clears its account's record (not its address's: one
//! account of one's own must not buy fresh guesses at everyone else's).
//!
//! Both maps are bounded; the time is passed in, so tests drive it without sleeping.
use std::{
    collections::{HashMap, HashSet},
    fmt,
    hash::Hash,
    net::IpAddr,
    time::Duration,
};

use tokio::time::Instant;

use crate::{address_budgets::AddressKey, error::ChatError, limits::RetryAfter};

pub const FIRST_DELAY: Duration = Duration::from_secs(1);
pub const MAX_DELAY: Duration = Duration::from_secs(15 * 60);
/// A record quiet this long after its lock ends is forgotten: the count starts over.
const FORGET_AFTER: Duration = MAX_DELAY;
/// Records kept per map; beyond it the ones closest to being forgotten go first.
const CAPACITY: usize = 16_384;

/// Who is locked out, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guesser {
    Account(String),
    Address,
}

impl fmt::Display for Guesser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Guesser::Account(name) => write!(f, "for {name:?}"),
            Guesser::Address => f.write_str("from your address"),
        }
    }
}

/// The lock after `failures` wrong passwords in a row.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    (FIRST_DELAY * (1u32 << doublings)).min(MAX_DELAY)
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    locked_until: Instant,
}

/// Failure records by key, bounded.
#[derive(Debug)]
struct Records<K> {
    by_key: HashMap<K, Record>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Records<K> {
    fn new(capacity: usize) -> Self {
        Records {
            by_key: HashMap::new(),
            capacity,
        }
    }

    /// How long `key` must still wait, if it must.
    fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        let record = self.by_key.get(key)?;
        (record.locked_until > now).then(|| record.locked_until - now)
    }

    fn fail(&mut self, key: &K, now: Instant) {
        let fresh = Record {
            failures: 0,
            locked_until: now,
        };
        let mut record = match self.by_key.get(key) {
            Some(r) if now < r.locked_until + FORGET_AFTER => *r,
            _ => fresh,
        };
        record.failures = record.failures.saturating_add(1);
        record.locked_until = now + delay(record.failures);
        if !self.by_key.contains_key(key) && self.by_key.len() >= self.capacity {
            self.make_room(now);
        }
        self.by_key.insert(key.clone(), record);
    }

    fn clear(&mut self, key: &K) {
        self.by_key.remove(key);
    }

    fn make_room(&mut self, now: Instant) {
        self.by_key
            .retain(|_, r| now < r.locked_until + FORGET_AFTER);
        if self.by_key.len() >= self.capacity {
            let first_to_go = self
                .by_key
                .iter()
                .min_by_key(|(_, r)| r.locked_until)
                .map(|(k, _)| k.clone());
            if let Some(key) = first_to_go {
                self.by_key.remove(&key);
            }
        }
    }
}

/// How a password check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Right,
    Wrong,
    /// No answer reached the client (the store failed, it hung up): nothing learnt.
    Unknown,
}

/// The failure records of accounts (by `name_key`) and addresses, and the checks in
/// progress (at most one per account and per address at a time).
#[derive(Debug)]
pub struct Guessing {
    accounts: Records<String>,
    addresses: Records<AddressKey>,
    checking_accounts: HashSet<String>,
    checking_addresses: HashSet<AddressKey>,
}

impl Default for Guessing {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Guessing {
    fn with_capacity(capacity: usize) -> Self {
        Guessing {
            accounts: Records::new(capacity),
            addresses: Records::new(capacity),
            checking_accounts: HashSet::new(),
            checking_addresses: HashSet::new(),
        }
    }

    /// Starts a password check of account `key` (shown as `name`) from `ip`: refused
    /// while either is locked (the longer wait wins) or has a check in progress (then
    /// the wait is the first delay). Every `begin` that succeeds needs its `end`.
    pub fn begin(
        &mut self,
        name: &str,
        key: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), ChatError> {
        let ip = ip.map(AddressKey::of);
        let busy = |checking: bool| checking.then_some(FIRST_DELAY);
        let by_address = ip.and_then(|ip| {
            self.addresses
                .wait(&ip, now)
                .or(busy(self.checking_addresses.contains(&ip)))
        });
        let by_account = self
            .accounts
            .wait(&key.to_owned(), now)
            .or(busy(self.checking_accounts.contains(key)));
        let (who, wait) = match (by_account, by_address) {
            (Some(a), Some(b)) if b > a => (Guesser::Address, b),
            (Some(a), _) => (Guesser::Account(name.to_owned()), a),
            (None, Some(b)) => (Guesser::Address, b),
            (None, None) => {
                self.checking_accounts.insert(key.to_owned());
                if let Some(ip) = ip {
                    self.checking_addresses.insert(ip);
                }
                return Ok(());
            }
        };
        Err(ChatError::Guessing {
            who,
            retry_after: RetryAfter(wait),
        })
    }

    /// Ends the check `begin` started, recording its outcome: a wrong password locks the
    /// account and the address for longer, a right one clears the account's record.
    pub fn end(&mut self, key: &str, ip: Option<IpAddr>, outcome: Outcome, now: Instant) {
        let ip = ip.map(AddressKey::of);
        self.checking_accounts.remove(key);
        if let Some(ip) = &ip {
            self.checking_addresses.remove(ip);
        }
        match outcome {
            Outcome::Wrong => {
                self.accounts.fail(&key.to_owned(), now);
                if let Some(ip) = &ip {
                    self.addresses.fail(ip, now);
                }
            }
            Outcome::Right => self.accounts.clear(&key.to_owned()),
            Outcome::Unknown => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    /// A check that is refused, or else made and ended at once with `outcome`.
    fn check(
        g: &mut Guessing,
        name: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Option<(Guesser, Duration)> {
        let key = name.to_lowercase();
        let result = g.begin(name, &key, ip, now);
        if result.is_ok() {
            g.end(&key, ip, Outcome::Unknown, now);
        }
        wait(result)
    }

    fn fail(g: &mut Guessing, key: &str, ip: Option<IpAddr>, now: Instant) {
        g.end(key, ip, Outcome::Wrong, now);
    }

    fn wait(result: Result<(), ChatError>) -> Option<(Guesser, Duration)> {
        match result {
            Ok(()) => None,
            Err(ChatError::Guessing { who, retry_after }) => Some((who, retry_after.0)),
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_delay_doubles_from_1_s_to_15_min() {
        let delays: Vec<u64> = (1..=12).map(|n| delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 900, 900]);
        assert_eq!(delay(u32::MAX), MAX_DELAY);
    }

    #[test]
    fn failures_lock_the_account_and_the_address_and_success_clears_the_account() {
        let t0 = Instant::now();
        let mut g = Guessing::default();
        let me = ip("10.0.0.1");
        assert_eq!(check(&mut g, "Ann", me, t0), None);
        fail(&mut g, "ann", me, t0);
        assert_eq!(
            check(&mut g, "Ann", me, t0),
            Some((Guesser::Account("Ann".into()), S))
        );
        // The account is locked from anywhere; this address for any account.
        assert!(check(&mut g, "Ann", ip("10.0.0.2"), t0).is_some());
        assert_eq!(
            check(&mut g, "Bob", me, t0 + S / 2),
            Some((Guesser::Address, S / 2))
        );
        assert_eq!(check(&mut g, "Ann", me, t0 + S), None);
        fail(&mut g, "ann", me, t0 + S);
        fail(&mut g, "ann", me, t0 + 3 * S);
        assert_eq!(
            check(&mut g, "Ann", None, t0 + 3 * S),
            Some((Guesser::Account("Ann".into()), 4 * S))
        );
        // The right password clears the account; the address keeps its record.
        g.end("ann", None, Outcome::Right, t0 + 3 * S);
        assert_eq!(check(&mut g, "Ann", None, t0 + 3 * S), None);
        assert_eq!(
            check(&mut g, "Bob", me, t0 + 3 * S),
            Some((Guesser::Address, 4 * S))
        );
    }

    #[test]
    fn a_quiet_record_is_forgotten_and_the_count_starts_over() {
        let t0 = Instant::now();
        let mut g = Guessing::default();
        for i in 0..5 {
            fail(&mut g, "ann", None, t0 + i * 20 * S);
        }
        let locked_until = t0 + 80 * S + 16 * S;
        assert_eq!(
            check(&mut g, "ann", None, t0 + 80 * S).map(|w| w.1),
            Some(16 * S)
        );
        fail(&mut g, "ann", None, locked_until + FORGET_AFTER);
        assert_eq!(
            check(&mut g, "ann", None, locked_until + FORGET_AFTER).map(|w| w.1),
            Some(S)
        );
    }

    #[test]
    fn one_check_at_a_time_per_account_and_per_address() {
        let t0 = Instant::now();
        let mut g = Guessing::default();
        g.begin("ann", "ann", ip("10.0.0.1"), t0).unwrap();
        assert_eq!(
            wait(g.begin("ann", "ann", ip("10.0.0.2"), t0)),
            Some((Guesser::Account("ann".into()), FIRST_DELAY))
        );
        assert_eq!(
            wait(g.begin("bob", "bob", ip("10.0.0.1"), t0)),
            Some((Guesser::Address, FIRST_DELAY))
        );
        g.begin("bob", "bob", ip("10.0.0.2"), t0).unwrap();
        // A check that ended without an answer leaves no record.
        g.end("ann", ip("10.0.0.1"), Outcome::Unknown, t0);
        assert_eq!(check(&mut g, "ann", ip("10.0.0.1"), t0), None);
    }

    #[test]
    fn an_ipv6_guesser_is_known_by_its_64() {
        let t0 = Instant::now();
        let mut g = Guessing::default();
        fail(&mut g, "ann", ip("2001:db8:1:2::1"), t0);
        let same_64 = ip("2001:db8:1:2:ffff::9");
        assert_eq!(
            check(&mut g, "bob", same_64, t0).map(|w| w.0),
            Some(Guesser::Address)
        );
        assert_eq!(check(&mut g, "bob", ip("2001:db8:1:3::1"), t0), None);
    }

    #[test]
    fn the_maps_stay_bounded_dropping_the_soonest_unlocked() {
        let t0 = Instant::now();
        let mut g = Guessing::with_capacity(3);
        for i in 0..10u32 {
            let addr = IpAddr::from([10, 0, 0, i as u8]);
            fail(&mut g, &format!("n{i}"), Some(addr), t0 + i * S);
            assert!(g.accounts.by_key.len() <= 3 && g.addresses.by_key.len() <= 3);
        }
        // The newest are kept.
        let kept: HashSet<&str> = g.accounts.by_key.keys().map(|k| k.as_str()).collect();
        assert_eq!(kept, HashSet::from(["n7", "n8", "n9"]));
    }
}

//! Per-client limits: their settings, and the rate limiter behind the per-second ones.
//! A limit protects the server and everyone else from one client, so every client has
//! its own bucket (a session's, or an address's, kept in a bounded map) and hitting it
//! never slows anyone else. The current time is passed
//! in rather than read here, so tests drive it without sleeping.
use std::{collections::HashMap, fmt, hash::Hash, time::Duration};

use tokio::time::Instant;

/// The knobs; the server's config builds one from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Messages per second a session (or an address, for token-less senders) may post on
    /// average; 0 = no limit, for benchmarks.
    pub max_messages_per_sec: u32,
    /// Messages that may go back to back before the per-second rate applies.
    pub message_burst: u32,
    /// Typing notifications per second per session; 0 = no limit.
    pub typing_per_sec: u32,
    pub typing_burst: u32,
    /// Streams (Broadcast, Subscribe) one session may hold open at once.
    pub max_streams_per_session: usize,
    /// A guest session with no call and no open stream for this long ends, freeing its
    /// name.
    pub session_idle: Duration,
    /// The same for an account's session (the name stays the account's).
    pub account_session_idle: Duration,
    /// Most live sessions, guests and accounts together; more are refused.
    pub max_sessions: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_messages_per_sec: 10,
            message_burst: 20,
            typing_per_sec: 1,
            typing_burst: 3,
            max_streams_per_session: 8,
            session_idle: Duration::from_secs(30 * 60),
            account_session_idle: Duration::from_secs(30 * 24 * 3600),
            max_sessions: 100_000,
        }
    }
}

/// What a client was doing too fast, for the error it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Messages,
    Typing,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Messages => "messages",
            Action::Typing => "typing notifications",
        })
    }
}

/// Metadata on a rate-limit refusal: whole milliseconds to wait before retrying.
pub const RETRY_AFTER_METADATA: &str = "retry-after-ms";

/// How long to wait before trying again. Shown rounded *up* to a tenth of a second, so
/// a client that waits what it was told is never refused again, and never told "0.0 s".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub Duration);

impl RetryAfter {
    /// Rounded up, for the same reason as the text.
    pub fn as_millis_ceil(&self) -> u64 {
        u64::try_from(self.0.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

impl fmt::Display for RetryAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const TENTH_NS: u128 = 100_000_000;
        let tenths = self.0.as_nanos().div_ceil(TENTH_NS).max(1);
        write!(f, "{}.{} s", tenths / 10, tenths % 10)
    }
}

/// The interval of `n` per second; `None` (unlimited) for 0.
pub fn per_second(n: u32) -> Option<Duration> {
    (n > 0).then(|| Duration::from_secs(1) / n)
}

/// The interval of `n` per `period`; `None` (unlimited) for 0.
pub fn per_period(n: u32, period: Duration) -> Option<Duration> {
    (n > 0).then(|| period / n)
}

/// A token bucket: `burst` requests at once, then `per_sec` on average. Implemented as
/// GCRA (the time at which the bucket would be full again), which is the same bucket in
/// one `Instant` with exact integer arithmetic, so the retry-after it reports is exact.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    /// What one request costs; `None` means unlimited.
    interval: Option<Duration>,
    /// How far `full_at` may run ahead of now: the burst minus the request being made.
    tolerance: Duration,
    full_at: Instant,
}

impl RateLimiter {
    /// `per_sec == 0` never refuses; a burst below 1 is taken as 1.
    pub fn new(per_sec: u32, burst: u32, now: Instant) -> Self {
        Self::with_interval(per_second(per_sec), burst, now)
    }

    /// One request every `interval` on average (`None` never refuses), after a burst.
    pub fn with_interval(interval: Option<Duration>, burst: u32, now: Instant) -> Self {
        let tolerance = interval.unwrap_or_default() * burst.max(1).saturating_sub(1);
        RateLimiter {
            interval,
            tolerance,
            full_at: now,
        }
    }

    /// Takes one request if the bucket allows it; otherwise how long until it would.
    pub fn check(&mut self, now: Instant) -> Result<(), Duration> {
        let Some(interval) = self.interval else {
            return Ok(());
        };
        let full_at = self.full_at.max(now);
        let ahead = full_at - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        self.full_at = full_at + interval;
        Ok(())
    }

    /// How long until `check` would pass, without taking anything; `None` = now.
    pub fn wait(&self, now: Instant) -> Option<Duration> {
        self.interval?;
        let ahead = self.full_at.max(now) - now;
        (ahead > self.tolerance).then(|| ahead - self.tolerance)
    }

    /// A full bucket behaves exactly like a new one, so forgetting it loses nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        self.full_at <= now
    }
}

/// Rate limiters keyed by who is asking (an address, a session), all with the same
/// rate. Bounded: at capacity, full buckets are dropped first (losslessly), then the
/// eighth of them closest to full, which at worst forgives a little of some senders' debt
/// and never refuses a newcomer, so keys invented by an attacker cannot lock anyone out.
/// Evicting an eighth at once keeps the cost per new key constant on average.
#[derive(Debug)]
pub struct KeyedLimits<K> {
    interval: Option<Duration>,
    burst: u32,
    capacity: usize,
    by_key: HashMap<K, RateLimiter>,
}

impl<K: Hash + Eq + Clone> KeyedLimits<K> {
    /// `interval` is what one request costs (`None` = unlimited, and then nothing is
    /// kept); `burst` requests may go back to back.
    pub fn new(interval: Option<Duration>, burst: u32, capacity: usize) -> Self {
        KeyedLimits {
            interval,
            burst,
            capacity: capacity.max(1),
            by_key: HashMap::new(),
        }
    }

    /// Takes one request from `key`'s bucket; otherwise how long until it would fit.
    pub fn check(&mut self, key: &K, now: Instant) -> Result<(), Duration> {
        if let Some(limiter) = self.by_key.get_mut(key) {
            return limiter.check(now);
        }
        if self.interval.is_none() {
            return Ok(());
        }
        if self.by_key.len() >= self.capacity {
            self.make_room(now);
        }
        let mut limiter = RateLimiter::with_interval(self.interval, self.burst, now);
        let result = limiter.check(now);
        self.by_key.insert(key.clone(), limiter);
        result
    }

    /// How long until `key`'s next request would pass, without taking it; `None` = now.
    pub fn wait(&self, key: &K, now: Instant) -> Option<Duration> {
        self.by_key.get(key)?.wait(now)
    }

    /// Drops the buckets that have refilled; forgetting them loses nothing.
    pub fn prune(&mut self, now: Instant) {
        self.by_key.retain(|_, limiter| !limiter.is_full(now));
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    fn make_room(&mut self, now: Instant) {
        self.prune(now);
        if self.by_key.len() < self.capacity {
            return;
        }
        let evict = (self.capacity / 8).max(1);
        let mut by_debt: Vec<(Instant, K)> = self
            .by_key
            .iter()
            .map(|(key, limiter)| (limiter.full_at, key.clone()))
            .collect();
        by_debt.select_nth_unstable_by_key(evict - 1, |(full_at, _)| *full_at);
        for (_, key) in &by_debt[..evict] {
            self.by_key.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn allows_the_burst_then_refuses_with_the_exact_wait_and_recovers() {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::new(10, 20, t0);
        for _ in 0..20 {
            assert_eq!(limiter.check(t0), Ok(()));
        }
        assert_eq!(limiter.check(t0), Err(100 * MS));
        // 30 ms later the wait is 70 ms; one nanosecond early is still too early.
        assert_eq!(limiter.check(t0 + 30 * MS), Err(70 * MS));
        let ready = t0 + 100 * MS;
        assert_eq!(
            limiter.check(ready - Duration::from_nanos(1)),
            Err(Duration::from_nanos(1))
        );
        assert_eq!(limiter.check(ready), Ok(()));
        assert_eq!(limiter.check(ready), Err(100 * MS));
        // Past the burst, the steady rate: one every 100 ms.
        for i in 2..12 {
            assert_eq!(limiter.check(t0 + i * 100 * MS), Ok(()));
            assert!(limiter.check(t0 + i * 100 * MS).is_err());
        }
        // Idle long enough, the whole burst is back, and no more.
        let later = t0 + Duration::from_secs(60);
        assert!(limiter.is_full(later));
        for _ in 0..20 {
            assert_eq!(limiter.check(later), Ok(()));
        }
        assert!(limiter.check(later).is_err());
    }

    #[test]
    fn zero_rate_is_unlimited_and_zero_burst_means_one() {
        let t0 = Instant::now();
        let mut unlimited = RateLimiter::new(0, 0, t0);
        assert!((0..10_000).all(|_| unlimited.check(t0).is_ok()));

        let mut one = RateLimiter::new(2, 0, t0);
        assert_eq!(one.check(t0), Ok(()));
        assert_eq!(one.check(t0), Err(500 * MS));
    }

    #[test]
    fn retry_after_rounds_up_to_a_tenth() {
        let shown = |d: Duration| RetryAfter(d).to_string();
        assert_eq!(shown(350 * MS), "0.4 s");
        assert_eq!(shown(400 * MS), "0.4 s");
        assert_eq!(shown(Duration::from_nanos(1)), "0.1 s");
        assert_eq!(shown(Duration::ZERO), "0.1 s");
        assert_eq!(shown(12_301 * MS), "12.4 s");
        assert_eq!(RetryAfter(Duration::from_nanos(1)).as_millis_ceil(), 1);
        assert_eq!(RetryAfter(1500 * MS).as_millis_ceil(), 1500);
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let t0 = Instant::now();
        let mut limits = KeyedLimits::new(per_second(1), 2, 100);
        assert_eq!(limits.check(&"spammer", t0), Ok(()));
        assert_eq!(limits.check(&"spammer", t0), Ok(()));
        assert_eq!(limits.wait(&"spammer", t0), Some(1000 * MS));
        assert_eq!(limits.check(&"spammer", t0), Err(1000 * MS));
        assert_eq!(limits.wait(&"ann", t0), None);
        assert_eq!(limits.check(&"ann", t0), Ok(()));
        assert_eq!(limits.check(&"spammer", t0 + 1000 * MS), Ok(()));
    }

    #[test]
    fn the_keyed_map_stays_bounded() {
        let t0 = Instant::now();
        let mut limits = KeyedLimits::new(per_second(1), 1, 16);
        // Busy keys beyond capacity evict the least indebted; new keys are never refused.
        for i in 0..500u32 {
            let now = t0 + i * MS;
            assert_eq!(limits.check(&i, now), Ok(()), "{i}");
            assert!(limits.len() <= 16);
        }
        // The newest, still-owing keys are the ones kept: 499 is still limited.
        assert!(limits.check(&499, t0 + 500 * MS).is_err());
        // Refilled buckets are pruned, on demand or when the map fills.
        limits.prune(t0 + Duration::from_secs(2));
        assert!(limits.is_empty());

        // An unlimited rate keeps nothing at all.
        let mut unlimited = KeyedLimits::new(None, 0, 3);
        for i in 0..10 {
            assert_eq!(unlimited.check(&i, t0), Ok(()));
        }
        assert!(unlimited.is_empty());
    }

    #[test]
    fn a_full_map_drops_refilled_buckets_before_busy_ones() {
        let t0 = Instant::now();
        let mut limits = KeyedLimits::new(per_second(1), 1, 2);
        limits.check(&"old", t0).unwrap();
        let t1 = t0 + 1500 * MS; // "old" has refilled by now
        limits.check(&"busy", t1).unwrap();
        limits.check(&"new", t1).unwrap();
        assert_eq!(limits.len(), 2);
        // "busy" kept its debt: had it been evicted instead, this would pass.
        assert!(limits.check(&"busy", t1).is_err());
    }

    #[test]
    fn slower_rates_than_one_per_second() {
        let t0 = Instant::now();
        let mut limiter =
            RateLimiter::with_interval(per_period(5, Duration::from_secs(3600)), 2, t0);
        assert_eq!(limiter.check(t0), Ok(()));
        assert_eq!(limiter.check(t0), Ok(()));
        assert_eq!(limiter.check(t0), Err(Duration::from_secs(720)));
        assert_eq!(per_period(0, Duration::from_secs(60)), None);
    }
}

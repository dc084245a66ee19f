//! What one network address may do, whatever names or sessions it uses: Joins and
//! sign-ins per minute (so one script cannot hold every common name), and one posting
//! allowance shared by every name it posts under without a token (so rotating names buys
//! no fresh allowance). Keyed by `AddressKey` (see `client_addr` for which address a
//! request counts as); each map is bounded, so invented addresses cost bounded memory.
use std::{
    net::{IpAddr, Ipv6Addr},
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    client_addr::ClientIp,
    error::ChatError,
    limits::{per_period, per_second, KeyedLimits, RetryAfter},
};

/// Addresses tracked per budget. At about 100 bytes an entry, one budget holds at most
/// ~6.5 MiB; past it the least indebted addresses are forgotten (see `KeyedLimits`).
pub const MAX_TRACKED_ADDRESSES: usize = 65_536;

/// The unit a budget is kept for: an IPv4 address, or an IPv6 /64. One IPv6 subscriber
/// usually gets a whole /64 (often far more), so counting single IPv6 addresses would
/// hand one person 2^64 allowances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => AddressKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    AddressKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

/// The knobs; the server's config builds one from its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSettings {
    /// Join, Register and SignIn calls per minute per address; 0 = no limit.
    pub sign_ins_per_min: u32,
    pub sign_in_burst: u32,
    /// Messages per second per address for token-less senders; 0 = no limit (the same
    /// knob as a session's allowance, so `--max-messages-per-sec 0` lifts both).
    pub anonymous_messages_per_sec: u32,
    pub anonymous_message_burst: u32,
}

/// The per-address budgets; cheap to clone, every clone shares them.
#[derive(Clone)]
pub struct AddressBudgets(Arc<Budgets>);

struct Budgets {
    sign_ins: Mutex<KeyedLimits<AddressKey>>,
    anonymous_posts: Mutex<KeyedLimits<AddressKey>>,
}

impl AddressBudgets {
    pub fn new(settings: BudgetSettings) -> Self {
        let minute = Duration::from_secs(60);
        AddressBudgets(Arc::new(Budgets {
            sign_ins: Mutex::new(KeyedLimits::new(
                per_period(settings.sign_ins_per_min, minute),
                settings.sign_in_burst,
                MAX_TRACKED_ADDRESSES,
            )),
            anonymous_posts: Mutex::new(KeyedLimits::new(
                per_second(settings.anonymous_messages_per_sec),
                settings.anonymous_message_burst,
                MAX_TRACKED_ADDRESSES,
            )),
        }))
    }

    /// Takes one Join/Register/SignIn from the caller's address. A request without an
    /// address (built in-process, no peer) is not counted.
    pub fn sign_in(&self, client: Option<&ClientIp>) -> Result<(), ChatError> {
        take(&self.0.sign_ins, client).map_err(|wait| ChatError::TooManySignIns(RetryAfter(wait)))
    }

    /// Takes one message from the allowance the caller's address shares among every name
    /// it posts under without a token.
    pub fn anonymous_post(&self, client: Option<&ClientIp>) -> Result<(), ChatError> {
        take(&self.0.anonymous_posts, client)
            .map_err(|wait| ChatError::AnonymousPostsTooFast(RetryAfter(wait)))
    }
}

fn take(
    limits: &Mutex<KeyedLimits<AddressKey>>,
    client: Option<&ClientIp>,
) -> Result<(), Duration> {
    let Some(ClientIp(ip)) = client else {
        return Ok(());
    };
    let now = Instant::now();
    limits.lock().unwrap().check(&AddressKey::of(*ip), now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<ClientIp> {
        Some(ClientIp(s.parse().unwrap()))
    }

    fn settings() -> BudgetSettings {
        BudgetSettings {
            sign_ins_per_min: 2,
            sign_in_burst: 2,
            anonymous_messages_per_sec: 1,
            anonymous_message_burst: 1,
        }
    }

    #[test]
    fn ipv6_addresses_of_one_64_share_a_key_and_mapped_ipv4_is_ipv4() {
        let key = |s: &str| AddressKey::of(s.parse().unwrap());
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("::ffff:10.0.0.1"), key("10.0.0.1"));
        assert_ne!(key("10.0.0.1"), key("10.0.0.2"));
    }

    #[tokio::test(start_paused = true)]
    async fn sign_ins_are_counted_per_address() {
        let budgets = AddressBudgets::new(settings());
        budgets.sign_in(ip("10.0.0.1").as_ref()).unwrap();
        budgets.sign_in(ip("10.0.0.1").as_ref()).unwrap();
        let refused = budgets.sign_in(ip("10.0.0.1").as_ref()).unwrap_err();
        assert_eq!(
            refused,
            ChatError::TooManySignIns(RetryAfter(Duration::from_secs(30)))
        );
        budgets.sign_in(ip("10.0.0.2").as_ref()).unwrap();
        // No address (in-process): nothing to count.
        for _ in 0..10 {
            budgets.sign_in(None).unwrap();
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        budgets.sign_in(ip("10.0.0.1").as_ref()).unwrap();
    }

    #[test]
    fn zero_lifts_a_budget() {
        let budgets = AddressBudgets::new(BudgetSettings {
            sign_ins_per_min: 0,
            anonymous_messages_per_sec: 0,
            ..settings()
        });
        for _ in 0..1000 {
            budgets.sign_in(ip("10.0.0.1").as_ref()).unwrap();
            budgets.anonymous_post(ip("10.0.0.1").as_ref()).unwrap();
        }
    }
}

//! How many Subscribe and Broadcast streams the server holds open at once: in total
//! (`--max-streams`) and per client address (`--max-streams-per-ip`), token-less streams
//! included. Each open stream may buffer a few hundred KiB when its reader stalls, so
//! these caps are what bound the server's worst-case memory (README, "Memory"); the
//! per-session cap alone does not, since anyone may open streams without a session.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use crate::{address_budgets::AddressKey, error::ChatError, limits::RetryAfter};

/// A refusal says to come back after this long: streams free up as clients close them
/// or the stall sweeper cuts them.
pub const STREAMS_FULL_RETRY: Duration = Duration::from_secs(5);

/// The caps and who holds them; cheap to clone.
#[derive(Clone)]
pub struct StreamCaps(Arc<Caps>);

struct Caps {
    /// 0 = no cap.
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with a stream open, so at most `total` entries.
    by_address: HashMap<AddressKey, usize>,
}

impl StreamCaps {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        StreamCaps(Arc::new(Caps {
            max_total,
            max_per_address,
            open: Mutex::default(),
        }))
    }

    /// A slot for a new stream from `client` (`None`: a request built in-process, counted
    /// in the total only), held until the stream ends; or the refusal.
    pub fn admit(&self, client: Option<IpAddr>) -> Result<StreamSlot, ChatError> {
        let caps = &self.0;
        let key = client.map(AddressKey::of);
        let mut open = caps.open.lock().unwrap();
        let retry_after = RetryAfter(STREAMS_FULL_RETRY);
        if caps.max_total > 0 && open.total >= caps.max_total {
            return Err(ChatError::ServerStreamsFull {
                limit: caps.max_total,
                retry_after,
            });
        }
        if let Some(key) = key {
            let from_client = open.by_address.get(&key).copied().unwrap_or(0);
            if caps.max_per_address > 0 && from_client >= caps.max_per_address {
                return Err(ChatError::AddressStreamsFull {
                    limit: caps.max_per_address,
                    retry_after,
                });
            }
            *open.by_address.entry(key).or_default() += 1;
        }
        open.total += 1;
        Ok(StreamSlot {
            caps: Arc::clone(caps),
            key,
        })
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.0.open.lock().unwrap().total
    }
}

/// One open stream's place under the caps; dropping it (the stream ended) frees it.
pub struct StreamSlot {
    caps: Arc<Caps>,
    key: Option<AddressKey>,
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap();
        open.total -= 1;
        if let Some(key) = self.key {
            if let Some(n) = open.by_address.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    open.by_address.remove(&key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn each_cap_holds_and_a_closed_stream_frees_its_slot() {
        let caps = StreamCaps::new(3, 2);
        let a1 = caps.admit(ip("10.0.0.1")).unwrap();
        let _a2 = caps.admit(ip("10.0.0.1")).unwrap();
        assert!(matches!(
            caps.admit(ip("10.0.0.1")),
            Err(ChatError::AddressStreamsFull { limit: 2, .. })
        ));
        let _b1 = caps.admit(ip("10.0.0.2")).unwrap();
        assert!(matches!(
            caps.admit(ip("10.0.0.3")),
            Err(ChatError::ServerStreamsFull { limit: 3, .. })
        ));
        assert_eq!(caps.open(), 3);
        drop(a1);
        let _a3 = caps.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(caps.open(), 3);
    }

    #[test]
    fn an_ipv6_slash_64_is_one_address() {
        let caps = StreamCaps::new(0, 1);
        let _first = caps.admit(ip("2001:db8::1")).unwrap();
        assert!(caps.admit(ip("2001:db8::2")).is_err());
        caps.admit(ip("2001:db8:0:1::1")).unwrap();
    }

    #[test]
    fn a_stream_without_an_address_counts_in_the_total_only() {
        let caps = StreamCaps::new(2, 1);
        let _local = caps.admit(None).unwrap();
        let _also_local = caps.admit(None).unwrap();
        assert_eq!(caps.open(), 2);
        assert!(matches!(
            caps.admit(ip("10.0.0.1")),
            Err(ChatError::ServerStreamsFull { .. })
        ));
    }

    #[test]
    fn zero_is_no_cap_and_the_map_keeps_only_open_addresses() {
        let caps = StreamCaps::new(0, 0);
        let slots: Vec<_> = (0..1000u32)
            .flat_map(|i| {
                let client = Some(IpAddr::from(i.to_be_bytes()));
                [caps.admit(client).unwrap(), caps.admit(client).unwrap()]
            })
            .collect();
        assert_eq!(caps.open(), 2000);
        drop(slots);
        assert_eq!(caps.open(), 0);
        assert!(caps.0.open.lock().unwrap().by_address.is_empty());
    }
}

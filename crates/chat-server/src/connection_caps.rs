//! How many connections the server holds at once: in total (`--max-connections`) and per
//! client address (`--max-connections-per-ip`), so one host cannot take every socket and
//! file descriptor. Checked in the accept loop, before a byte is read, so the address is
//! the TCP peer's: behind a reverse proxy every connection is the proxy's, and the
//! per-address cap must then be at least the proxy's connection pool (or 0, off).
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use crate::address_budgets::AddressKey;

/// The caps and who holds them; cheap to clone.
#[derive(Clone)]
pub struct ConnectionCaps(Arc<Caps>);

struct Caps {
    /// 0 = no cap.
    max_total: usize,
    max_per_address: usize,
    open: Mutex<Open>,
    refused: AtomicU64,
}

#[derive(Default)]
struct Open {
    total: usize,
    /// Only addresses with a connection open, so at most `total` entries.
    by_address: HashMap<AddressKey, usize>,
}

/// Why a connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCap {
    Total(usize),
    PerAddress(usize),
}

impl ConnectionCaps {
    pub fn new(max_total: usize, max_per_address: usize) -> Self {
        ConnectionCaps(Arc::new(Caps {
            max_total,
            max_per_address,
            open: Mutex::default(),
            refused: AtomicU64::new(0),
        }))
    }

    /// A slot for a new connection from `peer`, held until the connection ends; or which
    /// cap it would break (counted in `refused`).
    pub fn admit(&self, peer: IpAddr) -> Result<ConnectionSlot, OverCap> {
        let caps = &self.0;
        let key = AddressKey::of(peer);
        let mut open = caps.open.lock().unwrap();
        let from_peer = open.by_address.get(&key).copied().unwrap_or(0);
        let over = if caps.max_total > 0 && open.total >= caps.max_total {
            Some(OverCap::Total(caps.max_total))
        } else if caps.max_per_address > 0 && from_peer >= caps.max_per_address {
            Some(OverCap::PerAddress(caps.max_per_address))
        } else {
            None
        };
        if let Some(over) = over {
            caps.refused.fetch_add(1, Ordering::Relaxed);
            return Err(over);
        }
        open.total += 1;
        *open.by_address.entry(key).or_default() += 1;
        Ok(ConnectionSlot {
            caps: Arc::clone(caps),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.0.open.lock().unwrap().total
    }

    /// Connections turned away since the server started.
    pub fn refused(&self) -> u64 {
        self.0.refused.load(Ordering::Relaxed)
    }
}

/// One admitted connection; dropping it (the connection ended) frees its slot.
pub struct ConnectionSlot {
    caps: Arc<Caps>,
    key: AddressKey,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.caps.open.lock().unwrap();
        open.total -= 1;
        if let Some(n) = open.by_address.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.by_address.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_cap_holds_and_a_closed_connection_frees_its_slot() {
        let caps = ConnectionCaps::new(3, 2);
        let a1 = caps.admit(ip("10.0.0.1")).unwrap();
        let _a2 = caps.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(
            caps.admit(ip("10.0.0.1")).err(),
            Some(OverCap::PerAddress(2))
        );
        let _b1 = caps.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(caps.admit(ip("10.0.0.3")).err(), Some(OverCap::Total(3)));
        assert_eq!((caps.open(), caps.refused()), (3, 2));
        drop(a1);
        let _a3 = caps.admit(ip("10.0.0.1")).unwrap();
        assert_eq!(caps.open(), 3);
    }

    #[test]
    fn zero_is_no_cap_and_the_map_keeps_only_open_addresses() {
        let caps = ConnectionCaps::new(0, 0);
        let slots: Vec<_> = (0..1000u32)
            .map(|i| caps.admit(IpAddr::from(i.to_be_bytes())).unwrap())
            .collect();
        assert_eq!(caps.open(), 1000);
        drop(slots);
        assert_eq!(caps.open(), 0);
        assert!(caps.0.open.lock().unwrap().by_address.is_empty());
    }
}

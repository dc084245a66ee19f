//! Who may create a room, and how often. A room is created only for someone signed in
//! (guests included): a token-less client keeps to rooms that exist (`general` always
//! does), so a script cannot fill the room cap with names. Creating is limited per
//! session and per address, so neither fresh sessions nor one session alone can. A
//! conversation (`direct`) is not made by choosing a name: its two accounts may always
//! open theirs (`room_access` checked them), and the conversation cap bounds them all.
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::time::Instant;

use crate::{
    address_budgets::{AddressKey, MAX_TRACKED_ADDRESSES},
    client_addr::ClientIp,
    error::ChatError,
    hub::RoomHub,
    limits::{per_period, KeyedLimits, RetryAfter},
    room::Room,
    sessions::Session,
};

/// The rule and its budgets; cheap to clone.
#[derive(Clone)]
pub struct RoomCreation(Arc<Budgets>);

struct Budgets {
    per_session: Mutex<KeyedLimits<u64>>,
    per_address: Mutex<KeyedLimits<AddressKey>>,
}

impl RoomCreation {
    /// `per_hour` rooms per session and per address, all of them at once if wanted, then
    /// spread over the hour; 0 = unlimited.
    pub fn new(per_hour: u32) -> Self {
        let interval = per_period(per_hour, Duration::from_secs(3600));
        RoomCreation(Arc::new(Budgets {
            per_session: Mutex::new(KeyedLimits::new(interval, per_hour, MAX_TRACKED_ADDRESSES)),
            per_address: Mutex::new(KeyedLimits::new(interval, per_hour, MAX_TRACKED_ADDRESSES)),
        }))
    }

    /// The room `name`, created for a signed-in caller within both budgets. A room that
    /// does not exist is `RoomNeedsSignIn` for a token-less caller.
    pub async fn room(
        &self,
        hub: &RoomHub,
        name: &str,
        session: Option<&Session>,
        client: Option<&ClientIp>,
    ) -> Result<Arc<Room>, ChatError> {
        if let Some(room) = hub.existing_anywhere(name).await? {
            return Ok(room);
        }
        let session = session.ok_or_else(|| ChatError::RoomNeedsSignIn(name.to_owned()))?;
        if !crate::direct::is_direct(name) {
            self.take(session.id(), client.map(|ClientIp(ip)| AddressKey::of(*ip)))?;
        }
        hub.create(name).await
    }

    /// Takes one creation from both budgets, or from neither.
    fn take(&self, session: u64, address: Option<AddressKey>) -> Result<(), ChatError> {
        let now = Instant::now();
        let mut per_session = self.0.per_session.lock().unwrap();
        let mut per_address = self.0.per_address.lock().unwrap();
        let wait = per_session
            .wait(&session, now)
            .max(address.and_then(|a| per_address.wait(&a, now)));
        if let Some(wait) = wait {
            return Err(ChatError::TooManyNewRooms(RetryAfter(wait)));
        }
        // Neither refuses now, and both locks are held.
        let _ = per_session.check(&session, now);
        if let Some(address) = address {
            let _ = per_address.check(&address, now);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> Option<AddressKey> {
        Some(AddressKey::of(s.parse().unwrap()))
    }

    #[tokio::test(start_paused = true)]
    async fn limited_per_session_and_per_address_and_a_refusal_takes_nothing() {
        let creation = RoomCreation::new(2);
        creation.take(1, key("10.0.0.1")).unwrap();
        creation.take(1, key("10.0.0.1")).unwrap();
        let refused = creation.take(1, key("10.0.0.1")).unwrap_err();
        assert_eq!(
            refused,
            ChatError::TooManyNewRooms(RetryAfter(Duration::from_secs(1800)))
        );
        // A new session on the same address: the address's budget is spent.
        assert!(creation.take(2, key("10.0.0.1")).is_err());
        // The same session from another address: the session's is.
        assert!(creation.take(1, key("10.0.0.2")).is_err());
        // Neither refusal took anything from the other budget.
        creation.take(2, key("10.0.0.2")).unwrap();
        creation.take(2, key("10.0.0.2")).unwrap();
        tokio::time::advance(Duration::from_secs(1800)).await;
        creation.take(1, key("10.0.0.1")).unwrap();
    }

    #[test]
    fn zero_is_unlimited() {
        let creation = RoomCreation::new(0);
        for _ in 0..1000 {
            creation.take(1, key("10.0.0.1")).unwrap();
        }
    }
}

//! Which room a request's `room` means for its caller, and whether they may use it: the
//! one gate every room-taking RPC passes (SendMessage, Broadcast, Subscribe, History,
//! edits, deletes, reactions, Typing, Search). A room is everyone's; a conversation
//! (`@peer`, see `direct`) only its two accounts'. Whatever a caller may not read is
//! answered exactly as a room that does not exist, in words that depend only on the name
//! asked, so nobody learns who talks to whom, nor (beyond what Register tells) who has an
//! account.
use std::{
    borrow::Cow,
    collections::HashMap,
    sync::{Arc, Mutex},
};

use crate::{
    accounts::Accounts, direct, error::ChatError, sessions::name_key, sessions::Session, validate,
};

/// Cheap to clone.
#[derive(Clone)]
pub struct RoomAccess {
    accounts: Accounts,
    /// Registered names by key, as looked up: a name is its account's for good, so an
    /// entry never goes stale, and a conversation's every post is not a database read.
    names: Arc<Mutex<HashMap<String, String>>>,
}

impl RoomAccess {
    pub fn new(accounts: Accounts) -> Self {
        RoomAccess {
            accounts,
            names: Arc::default(),
        }
    }

    /// The room `asked` names for `caller`, as the hub and the store keep it: a room's
    /// name (checked; empty is `general`), or the key of the caller's conversation with
    /// the account `asked` names after its `@`. Anything else that starts with `@` (a
    /// guest or token-less caller, a name nobody registered, a kept key) is `NoSuchRoom`.
    pub async fn resolve<'a>(
        &self,
        caller: Option<&Session>,
        asked: &'a str,
    ) -> Result<Cow<'a, str>, ChatError> {
        if !direct::is_direct(asked) {
            return Ok(Cow::Borrowed(validate::room(asked)?));
        }
        let hidden = || ChatError::NoSuchRoom(asked.to_owned());
        let Some(me) = caller.filter(|s| !s.is_guest()) else {
            return Err(hidden());
        };
        let Ok(peer) = validate::username(&asked[direct::PREFIX.len_utf8()..]) else {
            return Err(hidden());
        };
        let Some(peer) = self.registered(&peer).await? else {
            return Err(hidden());
        };
        Ok(Cow::Owned(direct::key(me.name(), &peer)))
    }

    /// The name `name` (valid) is registered as, if it is.
    async fn registered(&self, name: &str) -> Result<Option<String>, ChatError> {
        let key = name_key(name);
        if let Some(found) = self.names.lock().unwrap().get(&key) {
            return Ok(Some(found.clone()));
        }
        let Some(found) = self.accounts.registered_as(name).await? else {
            return Ok(None);
        };
        self.names.lock().unwrap().insert(key, found.clone());
        Ok(Some(found))
    }
}

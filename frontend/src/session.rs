//! The session kept across reloads: the name and the token Join returned, in localStorage,
//! so a reload goes straight back into the room as the same person. After signing out only
//! the name stays, to prefill the prompt.

const NAME_KEY: &str = "chat.name";
const TOKEN_KEY: &str = "chat.token";

/// A joined session: the name the server bound to `token`.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub name: String,
    pub token: String,
}

pub(crate) fn storage() -> Option<web_sys::Storage> {
    // Private modes may refuse storage; the page then just asks for the name every time.
    web_sys::window()?.local_storage().ok()?
}

fn get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok()?.filter(|v| !v.is_empty())
}

/// The saved session, if there is one (its token may have expired: the client re-joins).
pub fn load() -> Option<Identity> {
    Some(Identity {
        name: last_name()?,
        token: get(TOKEN_KEY)?,
    })
}

/// The name used last, to prefill the prompt.
pub fn last_name() -> Option<String> {
    crate::name::validate(&get(NAME_KEY)?).ok()
}

pub fn save(identity: &Identity) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(NAME_KEY, &identity.name);
        let _ = storage.set_item(TOKEN_KEY, &identity.token);
    }
}

pub fn forget_token() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(TOKEN_KEY);
    }
}

//! The session kept across reloads: the name, the token the server returned and whether it
//! is a guest's or an account's, in localStorage, so a reload goes straight back into the
//! room as the same person. After signing out the name and its kind stay, to prefill the
//! prompt (an account's name on the sign-in form). The password is never kept anywhere.

const NAME_KEY: &str = "chat.name";
const TOKEN_KEY: &str = "chat.token";
/// "account" for a registered name; absent for a guest (sessions saved before accounts
/// existed were all guests').
const KIND_KEY: &str = "chat.kind";
const ACCOUNT: &str = "account";

/// Who the page speaks as.
#[derive(Clone, Debug, PartialEq)]
pub struct Who {
    pub name: String,
    /// A guest holds the name only while the session lives (Join); otherwise the name is a
    /// registered account's (Register, SignIn).
    pub guest: bool,
}

/// A session: `who` is what the server bound to `token`.
#[derive(Clone, Debug, PartialEq)]
pub struct Identity {
    pub who: Who,
    pub token: String,
}

pub(crate) fn storage() -> Option<web_sys::Storage> {
    // Private modes may refuse storage; the page then just asks for the name every time.
    web_sys::window()?.local_storage().ok()?
}

fn get(key: &str) -> Option<String> {
    storage()?.get_item(key).ok()?.filter(|v| !v.is_empty())
}

/// The saved session, if there is one (its token may have expired: a guest's client joins
/// again, an account's asks for the password).
pub fn load() -> Option<Identity> {
    Some(Identity {
        who: last()?,
        token: get(TOKEN_KEY)?,
    })
}

/// The name used last and its kind, to prefill the prompt.
pub fn last() -> Option<Who> {
    Some(Who {
        name: crate::name::validate(&get(NAME_KEY)?).ok()?,
        guest: get(KIND_KEY).as_deref() != Some(ACCOUNT),
    })
}

pub fn save(identity: &Identity) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(NAME_KEY, &identity.who.name);
        let _ = storage.set_item(TOKEN_KEY, &identity.token);
        let _ = match identity.who.guest {
            true => storage.remove_item(KIND_KEY),
            false => storage.set_item(KIND_KEY, ACCOUNT),
        };
    }
}

pub fn forget_token() {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(TOKEN_KEY);
    }
}

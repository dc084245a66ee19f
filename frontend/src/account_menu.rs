//! Who is signed in, in the header: the name (tagged "guest" for a guest, whose name is
//! only held while the session lives), "Sign out" (this page's session), and for an
//! account a menu to change the password or sign out everywhere (every session of the
//! account ends, on every device, this one too).

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::ChatClient;
use crate::handler::h;
use crate::text::text;

#[component]
pub fn AccountMenu(
    client: ChatClient,
    name: Memo<String>,
    guest: Memo<bool>,
    on_sign_out: Callback<()>,
    /// Signed out everywhere: what to tell the person on the prompt.
    on_ended: Callback<String>,
) -> impl IntoView {
    let client = StoredValue::new_local(client);
    view! {
        <span class="me">
            "You are " <strong data-testid="me">{text(move || name.get())}</strong>
            " "
            <span class="tag" data-testid="me-guest" hidden=move || !guest.get()>"guest"</span>
        </span>
        <AccountActions client=client.get_value() name guest on_ended />
        <button type="button" class="link" data-testid="sign-out" on:click=h(move |_| on_sign_out.run(()))>
            "Sign out"
        </button>
    }
}

/// The account's menu: change the password, sign out everywhere. Hidden for a guest.
#[component]
fn AccountActions(
    client: ChatClient,
    name: Memo<String>,
    guest: Memo<bool>,
    on_ended: Callback<String>,
) -> impl IntoView {
    let client = StoredValue::new_local(client);
    let old = RwSignal::new(String::new());
    let new = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    // The outcome of the last action: (is an error, text).
    let outcome = RwSignal::new(None::<(bool, String)>);

    let change = move |ev: SubmitEvent| {
        ev.prevent_default();
        let (old_pw, new_pw) = (old.get_untracked(), new.get_untracked());
        if old_pw.is_empty() || new_pw.is_empty() {
            return outcome.set(Some((
                true,
                "Enter the current and the new password.".into(),
            )));
        }
        busy.set(true);
        let client = client.get_value();
        spawn_local(async move {
            let result = client.change_password(&old_pw, &new_pw).await;
            outcome.try_set(Some(match result {
                Ok(()) => {
                    old.try_set(String::new());
                    new.try_set(String::new());
                    (false, "Password changed.".into())
                }
                Err(e) => (true, e.message),
            }));
            busy.try_set(false);
        });
    };
    let everywhere = move |_| {
        busy.set(true);
        let client = client.get_value();
        spawn_local(async move {
            match client.sign_out_everywhere().await {
                Ok(n) => on_ended.run(format!(
                    "Signed out everywhere: {n} session{} ended.",
                    if n == 1 { "" } else { "s" }
                )),
                Err(e) => {
                    outcome.try_set(Some((true, e.message)));
                    busy.try_set(false);
                }
            }
        });
    };

    view! {
        <details class="account" data-testid="account-menu" hidden=move || guest.get()>
            <summary>"Account"</summary>
            <div class="account-panel">
                <form class="change-password" on:submit=h(change)>
                    // Tells a password manager which account the new password is for.
                    <input
                        type="text"
                        autocomplete="username"
                        hidden
                        readonly
                        value=text(move || name.get())
                    />
                    <label for="old-password">"Current password"</label>
                    <input
                        id="old-password"
                        data-testid="old-password-input"
                        type="password"
                        autocomplete="current-password"
                        prop:value=old
                        on:input=h(move |ev| old.set(event_target_value(&ev)))
                    />
                    <label for="new-password">"New password"</label>
                    <input
                        id="new-password"
                        data-testid="new-password-input"
                        type="password"
                        autocomplete="new-password"
                        prop:value=new
                        on:input=h(move |ev| new.set(event_target_value(&ev)))
                    />
                    <button type="submit" data-testid="change-password-submit" disabled=busy>
                        "Change password"
                    </button>
                </form>
                <button
                    type="button"
                    data-testid="sign-out-everywhere"
                    disabled=busy
                    on:click=h(everywhere)
                >
                    "Sign out everywhere"
                </button>
                <p
                    class:error=move || outcome.with(|o| o.as_ref().is_some_and(|(failed, _)| *failed))
                    class:notice=move || outcome.with(|o| o.as_ref().is_some_and(|(failed, _)| !failed))
                    role="status"
                    data-testid="account-result"
                    hidden=move || outcome.with(Option::is_none)
                >
                    {text(move || outcome.with(|o| o.as_ref().map(|(_, text)| text.clone()).unwrap_or_default()))}
                </p>
            </div>
        </details>
    }
}

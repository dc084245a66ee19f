//! The first screen: pick the name to chat under. Checked here with the server's rules
//! (see `name`), so a typo gets an explanation instead of a failed send later.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;

use crate::name;

#[component]
pub fn NamePrompt(
    initial: String,
    on_join: Callback<String>,
    /// Offered when changing an existing name: go back to the room unchanged.
    on_cancel: Option<Callback<()>>,
) -> impl IntoView {
    let (value, set_value) = signal(initial);
    let (error, set_error) = signal(None::<String>);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        match name::validate(&value.get_untracked()) {
            Ok(name) => on_join.run(name),
            Err(message) => set_error.set(Some(message)),
        }
    };

    view! {
        <form class="name-prompt" on:submit=on_submit>
            <h1>"Join the chat"</h1>
            <label for="name-input">"Your name"</label>
            <input
                id="name-input"
                data-testid="name-input"
                type="text"
                autocomplete="nickname"
                autofocus
                prop:value=value
                on:input=move |ev| {
                    set_value.set(event_target_value(&ev));
                    set_error.set(None);
                }
            />
            <button type="submit" data-testid="name-submit">"Join"</button>
            {on_cancel.map(|cancel| view! {
                <button type="button" class="link" on:click=move |_| cancel.run(())>"Cancel"</button>
            })}
            <Show when=move || error.with(Option::is_some)>
                <p class="error" role="alert" data-testid="name-error">
                    {move || error.get().unwrap_or_default()}
                </p>
            </Show>
            <p class="hint">"Up to 32 letters, digits, _ - or ."</p>
        </form>
    }
}

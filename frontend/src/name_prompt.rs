//! The first screen: pick the name to chat under. Checked here with the server's rules
//! (see `name`), so a typo gets an explanation at once; then Join asks the server, whose
//! refusal (the name is taken) is shown the same way.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::ChatClient;
use crate::name;

#[component]
pub fn NamePrompt(
    client: ChatClient,
    initial: String,
    /// Why the prompt is back (the server's words), e.g. the name was taken while away.
    notice: Option<String>,
    on_joined: Callback<String>,
) -> impl IntoView {
    let client = StoredValue::new_local(client);
    let (value, set_value) = signal(initial);
    let (error, set_error) = signal(notice);
    let (joining, set_joining) = signal(false);
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        if joining.get_untracked() {
            return;
        }
        let chosen = match name::validate(&value.get_untracked()) {
            Ok(chosen) => chosen,
            Err(message) => return set_error.set(Some(message)),
        };
        set_joining.set(true);
        let client = client.get_value();
        spawn_local(async move {
            match client.join(&chosen).await {
                Ok(joined) => on_joined.run(joined),
                Err(e) => {
                    set_error.set(Some(e.message));
                    set_joining.set(false);
                }
            }
        });
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
            <button type="submit" data-testid="name-submit" disabled=joining>"Join"</button>
            <Show when=move || error.with(Option::is_some)>
                <p class="error" role="alert" data-testid="name-error">
                    {move || error.get().unwrap_or_default()}
                </p>
            </Show>
            <p class="hint">"Up to 32 letters (of one script), digits, _ - or ."</p>
        </form>
    }
}

//! The first screen: continue as a guest (Join: the name is held while the session lives),
//! sign in to an account, or register a name with a password (it is then the account's for
//! good). The name is checked here with the server's rules (see `name`), so a typo gets an
//! explanation at once; the server's refusals (name taken, wrong password, too many tries)
//! are shown in its words, and a refusal that says how long to wait keeps the button off
//! for that long. The password goes to the server and nowhere else.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::client::{ApiError, ChatClient};
use crate::handler::h;
use crate::name;
use crate::session::Who;
use crate::text::text;
use crate::timer::sleep_ms;

/// Which way in the prompt offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Guest,
    SignIn,
    Register,
}

impl Mode {
    fn action(self) -> &'static str {
        match self {
            Mode::Guest => "Continue as guest",
            Mode::SignIn => "Sign in",
            Mode::Register => "Register",
        }
    }

    fn hint(self) -> &'static str {
        match self {
            Mode::Guest => {
                "Up to 32 letters (of one script), digits, _ - or . A guest's name is free \
                 again once the session ends; register to keep it."
            }
            Mode::SignIn => "The name and password you registered.",
            Mode::Register => "The name becomes yours for good: nobody else can use it.",
        }
    }
}

#[component]
pub fn NamePrompt(
    client: ChatClient,
    initial: String,
    /// A password typed before the app took over (early_prompt).
    typed_password: String,
    mode: Mode,
    /// Sent at once: the static prompt was submitted before the app was there.
    submit_now: bool,
    /// Why the prompt is back (the session ended, the name was taken while away, ...).
    notice: Option<String>,
    on_joined: Callback<Who>,
) -> impl IntoView {
    let client = StoredValue::new_local(client);
    let mode = RwSignal::new(mode);
    let value = RwSignal::new(initial);
    let password = RwSignal::new(typed_password);
    let error = RwSignal::new(None::<String>);
    let joining = RwSignal::new(false);
    // Seconds until the server takes another try (after RESOURCE_EXHAUSTED).
    let wait_s = RwSignal::new(0u32);

    let refused = move |e: ApiError| {
        error.set(Some(e.message));
        joining.set(false);
        let Some(ms) = e.retry_after_ms.filter(|&ms| ms > 0) else {
            return;
        };
        let started = wait_s.get_untracked() == 0;
        wait_s.set(ms.div_ceil(1000));
        if started {
            spawn_local(async move {
                while wait_s.try_get_untracked().is_some_and(|s| s > 0) {
                    sleep_ms(1000).await;
                    wait_s.try_update(|s| *s = s.saturating_sub(1));
                }
            });
        }
    };
    let submit = move || {
        if joining.get_untracked() || wait_s.get_untracked() > 0 {
            return;
        }
        let chosen = match name::validate(&value.get_untracked()) {
            Ok(chosen) => chosen,
            Err(message) => return error.set(Some(message)),
        };
        let mode = mode.get_untracked();
        let secret = password.get_untracked();
        if mode != Mode::Guest && secret.is_empty() {
            return error.set(Some("Please enter your password.".into()));
        }
        joining.set(true);
        let client = client.get_value();
        spawn_local(async move {
            let joined = match mode {
                Mode::Guest => client.join(&chosen).await,
                Mode::SignIn => client.sign_in(&chosen, &secret).await,
                Mode::Register => client.register(&chosen, &secret).await,
            };
            match joined {
                Ok(who) => on_joined.run(who),
                Err(e) => refused(e),
            }
        });
    };
    let on_submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        submit();
    };
    if submit_now {
        submit();
    }
    let tab = move |which: Mode, label: &'static str, testid: &'static str| {
        view! {
            <button
                type="button"
                role="tab"
                class="link"
                class:current=move || mode.get() == which
                aria-selected=text(move || (mode.get() == which).to_string())
                data-testid=testid
                on:click=h(move |_| {
                    mode.set(which);
                    error.set(None);
                })
            >
                {label}
            </button>
        }
    };
    let blocked = move || joining.get() || wait_s.get() != 0;
    let button_label = move || match wait_s.get() {
        0 => mode.get().action().to_owned(),
        s => format!("Try again in {s} s"),
    };

    view! {
        <form class="name-prompt" on:submit=h(on_submit)>
            <h1>"Join the chat"</h1>
            <div class="modes" role="tablist">
                {tab(Mode::Guest, "Guest", "mode-guest")}
                {tab(Mode::SignIn, "Sign in", "mode-sign-in")}
                {tab(Mode::Register, "Register", "mode-register")}
            </div>
            {notice.map(|text| view! { <p class="notice" role="status" data-testid="name-notice">{text}</p> })}
            <label for="name-input">"Your name"</label>
            <input
                id="name-input"
                data-testid="name-input"
                type="text"
                autocomplete=text(move || match mode.get() {
                    Mode::Guest => "nickname".into(),
                    _ => "username".into(),
                })
                autofocus
                prop:value=value
                on:input=h(move |ev| {
                    value.set(event_target_value(&ev));
                    error.set(None);
                })
            />
            // Hidden, not left out, for a guest, as in index.html's static prompt.
            <label for="password-input" hidden=move || mode.get() == Mode::Guest>"Password"</label>
            <input
                id="password-input"
                data-testid="password-input"
                type="password"
                hidden=move || mode.get() == Mode::Guest
                autocomplete=text(move || match mode.get() {
                    Mode::Register => "new-password".into(),
                    _ => "current-password".into(),
                })
                prop:value=password
                on:input=h(move |ev| {
                    password.set(event_target_value(&ev));
                    error.set(None);
                })
            />
            <button
                type="submit"
                data-testid="name-submit"
                disabled=blocked
            >
                {text(button_label)}
            </button>
            {move || error.get().map(|e| view! { <p class="error" role="alert" data-testid="name-error">{e}</p> })}
            <p class="hint">{text(move || mode.get().hint().to_owned())}</p>
        </form>
    }
}

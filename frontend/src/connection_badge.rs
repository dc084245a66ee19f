//! The small status pill in the header, so a person knows whether what they see is live.
//! `data-state` carries the machine-readable state for styling and the e2e test.

use leptos::prelude::*;

use crate::feed::ConnState;
use crate::reader::Reader;
use crate::text::text;

fn state_name(state: ConnState) -> &'static str {
    match state {
        ConnState::Connecting => "connecting",
        ConnState::Live => "live",
        ConnState::Reconnecting { .. } => "reconnecting",
        ConnState::Offline => "offline",
    }
}

fn label(state: ConnState) -> String {
    match state {
        ConnState::Connecting => "Connecting\u{2026}".into(),
        ConnState::Live => "Live".into(),
        ConnState::Reconnecting {
            attempt,
            retry_in_s: Some(s),
        } => {
            format!("Reconnecting in {s}s (attempt {attempt})")
        }
        ConnState::Reconnecting {
            attempt,
            retry_in_s: None,
        } => {
            format!("Reconnecting\u{2026} (attempt {attempt})")
        }
        ConnState::Offline => "Offline".into(),
    }
}

#[component]
pub fn ConnectionBadge(state: Reader<ConnState>) -> impl IntoView {
    view! {
        <span
            class="badge"
            role="status"
            data-testid="connection"
            data-state=text(move || state_name(state.get()).to_owned())
        >
            {text(move || label(state.get()))}
        </span>
    }
}

//! Telling the person what came while the tab was hidden: the tab title counts what
//! arrived meanwhile ("(3) Chat", cleared when the tab is seen again): messages from others
//! in the room on screen, and the growth of the other rooms' unread counts. What calls for
//! them (a mention; a direct message, on screen or not) raises a browser
//! notification, once they turned notifications on. The permission is asked only from the
//! click on "Notify me", never on load: a prompt nobody asked for is one browsers block and
//! people refuse. The choice is kept in localStorage.

use leptos::prelude::*;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

const STORAGE_KEY: &str = "chat.notify";

/// A notification to raise if the tab is hidden.
pub struct Alert {
    pub title: String,
    pub body: String,
    /// What a click on it does, after bringing the tab to the front.
    pub open: Callback<()>,
}

/// Whether notifications are on, and the title's count; `Copy`, cheap to pass around.
#[derive(Clone, Copy)]
pub struct Notifier {
    /// Turned on by the person, and the browser allows it.
    on: RwSignal<bool>,
    /// The browser did not allow them when asked: said beside the button.
    refused: RwSignal<bool>,
    /// What arrived while the tab was hidden, and the page's own title, which the count
    /// goes in front of.
    unseen: StoredValue<(u64, String)>,
}

impl Notifier {
    /// Reads the person's earlier choice (never asks the browser anything) and keeps the
    /// title in step with the count and the tab's visibility.
    pub fn new() -> Self {
        let on = supported()
            && Notification::permission() == NotificationPermission::Granted
            && crate::session::storage()
                .and_then(|s| s.get_item(STORAGE_KEY).ok()?)
                .is_some();
        let n = Notifier {
            on: RwSignal::new(on),
            refused: RwSignal::new(false),
            unseen: StoredValue::new((0, document().title())),
        };
        let shown = window_event_listener(leptos::ev::visibilitychange, move |_| {
            if !document().hidden() {
                n.count(|n| *n = 0);
            }
        });
        on_cleanup(move || shown.remove());
        n
    }

    /// A message from someone else arrived. While the tab is hidden it is counted in the
    /// title, and `alert`, if any, becomes a notification (when they are on).
    pub fn arrived(self, alert: Option<Alert>) {
        if !document().hidden() {
            return;
        }
        self.counted(1);
        if let Some(alert) = alert {
            self.notify(alert);
        }
    }

    /// Raises `alert` as a notification if the tab is hidden and they are on; counts
    /// nothing (a caller counts what it knows, see `counted`).
    pub fn notify(self, alert: Alert) {
        if !document().hidden() || !self.on.get_untracked() {
            return;
        }
        let options = NotificationOptions::new();
        options.set_body(&alert.body);
        let Ok(shown) = Notification::new_with_options(&alert.title, &options) else {
            return;
        };
        let handle = shown.clone();
        let click = Closure::once_into_js(move || {
            let _ = window().focus();
            handle.close();
            alert.open.run(());
        });
        shown.set_onclick(Some(click.unchecked_ref()));
    }

    /// The "Notify me" click: asks the browser if it has not been asked, turns them on if it
    /// allows; clicked while on, turns them off.
    fn toggle(self) {
        if self.on.get_untracked() {
            return self.set(false);
        }
        let Ok(asked) = Notification::request_permission() else {
            return self.refused.set(true);
        };
        leptos::task::spawn_local(async move {
            let granted = JsFuture::from(asked).await.ok().and_then(|p| p.as_string());
            let on = granted.as_deref() == Some("granted");
            self.refused.try_set(!on);
            self.set(on);
        });
    }

    /// `n` more messages came unseen, in the title while the tab is hidden (those of other
    /// rooms, whose text the page does not have, raise no notification).
    pub fn counted(self, n: u64) {
        if n > 0 && document().hidden() {
            self.count(|count| *count += n);
        }
    }

    /// Changes the count and shows it in the title ("(3) Chat"; none at 0).
    fn count(self, change: impl FnOnce(&mut u64)) {
        self.unseen.update_value(|(count, base)| {
            change(count);
            document().set_title(&match count {
                0 => base.clone(),
                n => format!("({n}) {base}"),
            });
        });
    }

    fn set(self, on: bool) {
        self.on.try_set(on);
        if let Some(storage) = crate::session::storage() {
            let _ = match on {
                true => storage.set_item(STORAGE_KEY, "on"),
                false => storage.remove_item(STORAGE_KEY),
            };
        }
    }
}

/// Whether this browser has notifications at all (not every phone browser does).
fn supported() -> bool {
    js_sys::Reflect::has(&window(), &"Notification".into()).unwrap_or(false)
}

/// The header's "Notify me" switch, absent where the browser has no notifications.
#[component]
pub fn NotifyToggle(notifier: Notifier) -> impl IntoView {
    supported().then(|| {
        view! {
            <button
                type="button"
                class="link"
                data-testid="notify-toggle"
                aria-pressed=text(move || notifier.on.get().to_string())
                on:click=h(move |_| notifier.toggle())
            >
                "Notify me"
            </button>
            <span class="error" role="status" data-testid="notify-refused">
                {text(move || match notifier.refused.get() {
                    true => "Not allowed by the browser: its settings for this site can allow notifications.".into(),
                    false => String::new(),
                })}
            </span>
        }
    })
}
use crate::handler::h;
use crate::text::text;

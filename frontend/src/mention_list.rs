//! `@name` completion for the composer: while the caret is in an `@name` being typed, a
//! list of the people it may mean (who is here, then who spoke lately) opens above the
//! box. The box keeps the focus and points at the highlighted name with
//! `aria-activedescendant` (the listbox pattern a textarea allows), so the keyboard
//! drives it (arrows move, Enter or Tab takes, Escape closes) and a screen reader hears
//! each name; a click takes one too.

use leptos::ev::KeyboardEvent;
use leptos::prelude::*;
use web_sys::HtmlTextAreaElement;

use crate::handler::h;
use crate::mention;
use crate::reader::Reader;

/// The listbox's id, for the box's `aria-controls`.
const LIST_ID: &str = "mention-list";

#[derive(Clone, Copy)]
pub struct Completion {
    text: Reader<String>,
    /// Byte offsets of the `@` being completed and of the caret in `text`.
    typed: RwSignal<Option<(usize, usize)>>,
    /// Worked out again at each call (tracking what it reads): a few calls per key of at
    /// most a few hundred names cost less than a memo's code in the page.
    offered: Callback<(), Vec<String>>,
    /// The highlighted name's place in `offered`.
    active: RwSignal<usize>,
}

impl Completion {
    /// Completes `@name` in `text` with `people`, leaving out `me`.
    pub fn new(text: Reader<String>, people: Callback<(), Vec<String>>, me: Memo<String>) -> Self {
        let typed = RwSignal::new(None::<(usize, usize)>);
        let offered = Callback::new(move |()| {
            let Some((at, caret)) = typed.get() else {
                return Vec::new();
            };
            let me = me.with(|me| mention::fold(me));
            text.with(|t| {
                let typed = t.get(at + 1..caret).unwrap_or_default();
                mention::complete(typed, &people.run(()), &me)
            })
        });
        Completion {
            text,
            typed,
            offered,
            active: RwSignal::new(0),
        }
    }

    fn open(self) -> bool {
        !self.offered.run(()).is_empty()
    }

    /// Looks at where the caret is in `text` (the box's new value), after typing or a click.
    pub fn follow(self, el: &HtmlTextAreaElement, text: &str) {
        let caret = el.selection_start().ok().flatten().unwrap_or(0);
        let caret = mention::byte_at_utf16(text, caret);
        let now = mention::typed_at(text, caret).map(|(at, _)| (at, caret));
        if now.map(|t| t.0) != self.typed.get_untracked().map(|t| t.0) {
            self.active.set(0);
        }
        self.typed.set(now);
    }

    pub fn close(self) {
        self.typed.set(None);
    }

    /// A key pressed in the box: true when it was the list's (moving, taking, closing).
    /// Taking a name calls `take` as `pick` does.
    pub fn key(self, ev: &KeyboardEvent, take: impl Fn(String, u32)) -> bool {
        if !self.open() || ev.is_composing() {
            return false;
        }
        let count = untrack(|| self.offered.run(()).len());
        match ev.key().as_str() {
            "ArrowDown" => self.active.update(|a| *a = (*a + 1) % count),
            "ArrowUp" => self.active.update(|a| *a = (*a + count - 1) % count),
            "Enter" | "Tab" => self.pick(self.active.get_untracked(), take),
            "Escape" => self.close(),
            _ => return false,
        }
        ev.prevent_default();
        true
    }

    /// Takes the `index`th name: `take` gets the text with the `@` and what follows it up
    /// to the caret replaced by `@name `, and the caret after that (in UTF-16 units, as the
    /// box counts).
    fn pick(self, index: usize, take: impl Fn(String, u32)) {
        let name = untrack(|| self.offered.run(()).into_iter().nth(index));
        let (Some((at, caret)), Some(name)) = (self.typed.get_untracked(), name) else {
            return;
        };
        let Some((head, tail)) = self.text.with_untracked(|t| {
            Some((
                format!("{}@{name} ", t.get(..at)?),
                t.get(caret..)?.to_owned(),
            ))
        }) else {
            return;
        };
        self.close();
        take(format!("{head}{tail}"), head.encode_utf16().count() as u32);
    }

    /// The box's `aria-controls`: the list, while it is open. (An owned string like
    /// `active_id`'s, so both attributes share one kind of update in tachys.)
    pub fn controls(self) -> impl Fn() -> Option<String> + Copy {
        move || self.open().then(|| LIST_ID.to_owned())
    }

    /// The box's `aria-activedescendant`: the highlighted name, while the list is open.
    pub fn active_id(self) -> impl Fn() -> Option<String> + Copy {
        move || self.open().then(|| option_id(self.active.get()))
    }
}

fn option_id(index: usize) -> String {
    format!("mention-{index}")
}

/// The list of names offered; a click takes one (`take` as in `Completion::key`). A press
/// does not take the focus from the box. At most 8 short items: drawn anew on each change.
#[component]
pub fn MentionList(completion: Completion, take: Callback<(String, u32)>) -> impl IntoView {
    let c = completion;
    let options = move || {
        let offered = c.offered.run(());
        let active = c.active.get();
        offered
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                view! {
                    <li
                        id=option_id(i)
                        role="option"
                        data-testid="mention-option"
                        aria-selected=(i == active).to_string()
                        on:mousedown=h(|ev: leptos::ev::MouseEvent| ev.prevent_default())
                        on:click=h(move |_| c.pick(i, |text, caret| take.run((text, caret))))
                    >
                        {name}
                    </li>
                }
            })
            .collect_view()
    };
    view! {
        <ul
            id=LIST_ID
            class="mention-list"
            role="listbox"
            aria-label="People to mention"
            data-testid="mention-list"
            hidden=move || !c.open()
        >
            {options}
        </ul>
    }
}

//! Who is here: everyone with a session and the room open, from the Welcome and then each
//! Presence event (which carries the whole list, so a missed event cannot leave it wrong).

use leptos::prelude::*;

#[component]
pub fn MemberList(members: Signal<Vec<String>>, me: Signal<String>) -> impl IntoView {
    view! {
        <section class="members" aria-label="People here">
            <h2>"Here now " <span class="count">{move || members.with(Vec::len)}</span></h2>
            <ul data-testid="members">
                <For each=move || members.get() key=String::clone let:name>
                    <Member name me />
                </For>
            </ul>
        </section>
    }
}

#[component]
fn Member(name: String, me: Signal<String>) -> impl IntoView {
    let data_name = name.clone();
    let key = name.clone();
    let mine = move || me.with(|me| *me == key);
    view! { <li data-testid="member" data-name=data_name class:me=mine>{name}</li> }
}

//! Who is here: everyone with a session and the room open, from the Welcome's list and
//! count, then each Presence event's change (see `members`). In a crowded room the list
//! shows the first names and says how many more are here.

use leptos::prelude::*;

use crate::members::Members;
use crate::reader::Reader;

#[component]
pub fn MemberList(members: Reader<Members>, me: Memo<String>) -> impl IntoView {
    let more = move || members.with(Members::unlisted);
    view! {
        <section class="members" aria-label="People here">
            <h2>"Here now " <span class="count">{move || members.with(Members::count)}</span></h2>
            <ul data-testid="members">
                {move || {
                    members.with(|m| m.names().iter().map(|name| view! { <Member name=name.clone() me /> }).collect_view())
                }}
            </ul>
            {move || match more() {
                0 => None,
                n => Some(view! { <p class="more" data-testid="members-more">{format!("and {n} more")}</p> }),
            }}
        </section>
    }
}

#[component]
fn Member(name: String, me: Memo<String>) -> impl IntoView {
    let data_name = name.clone();
    let key = name.clone();
    let mine = move || me.with(|me| *me == key);
    view! { <li data-testid="member" data-name=data_name class:me=mine>{name}</li> }
}

//! Who is here: everyone with a session and the room open, from the Welcome's list and
//! count, then each Presence event's change (see `members`). In a crowded room the list
//! shows the first names and says how many more are here. A click on someone else's name
//! opens the conversation with them (`#@name`); the server says why if there is none to
//! have (a guest on either side).

use leptos::either::Either;
use leptos::prelude::*;

use crate::members::Members;
use crate::reader::Reader;
use crate::text::text;

#[component]
pub fn MemberList(members: Reader<Members>, me: Memo<String>) -> impl IntoView {
    let more = move || members.with(Members::unlisted);
    view! {
        <section class="members" aria-label="People here">
            <h2>"Here now " <span class="count">{text(move || members.with(Members::count).to_string())}</span></h2>
            <ul data-testid="members">
                {move || {
                    members.with(|m| m.names().iter().map(|name| view! { <Member name=name.clone() me /> }).collect_view())
                }}
            </ul>
            <p class="more" data-testid="members-more" hidden=move || more() == 0>
                {text(move || format!("and {} more", more()))}
            </p>
        </section>
    }
}

#[component]
fn Member(name: String, me: Memo<String>) -> impl IntoView {
    // The list is rebuilt when it changes, and `me` only changes with a new sign-in,
    // which rebuilds the whole chat.
    let mine = me.with_untracked(|me| *me == name);
    let data_name = name.clone();
    let link = (!mine).then(|| format!("#@{name}"));
    view! {
        <li data-testid="member" data-name=data_name class:me=mine>
            {match link {
                None => Either::Left(name),
                Some(href) => Either::Right(view! { <a href=href title="Send a direct message">{name}</a> }),
            }}
        </li>
    }
}

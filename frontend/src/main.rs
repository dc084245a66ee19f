//! The chat page: a Leptos client-side app that talks grpc-web to chat-server.
//! `main` only mounts it; `app` decides between the prompt (guest, sign in, register) and
//! the chat.

mod account_menu;
mod app;
mod backoff;
mod client;
mod composer;
mod connection_badge;
mod feed;
mod member_list;
mod members;
mod message_list;
mod name;
mod name_prompt;
mod network;
mod outgoing;
mod room_list;
mod room_name;
mod session;
mod timeline;
mod timer;
mod typing;
mod typing_indicator;
mod unread;

fn main() {
    // Panics otherwise vanish into "unreachable executed"; the hook puts them in the console.
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(app::App);
}

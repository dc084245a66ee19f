//! The chat page: a Leptos client-side app that talks grpc-web to chat-server.
//! `main` only mounts it; `app` decides between the prompt (guest, sign in, register) and
//! the chat.

mod account_menu;
mod announcer;
mod app;
mod backoff;
mod client;
mod composer;
mod connection_badge;
mod early_prompt;
mod feed;
mod grpc_web;
mod handler;
mod markup;
mod member_list;
mod members;
mod mention;
mod mention_list;
mod message_actions;
mod message_list;
mod message_text;
mod name;
mod name_prompt;
mod network;
mod notify;
mod outgoing;
mod reader;
mod room_list;
mod room_name;
mod rows;
mod search_panel;
mod session;
mod text;
mod timeline;
mod timer;
mod typing;
mod typing_indicator;
mod unread;
mod when;

// Talc instead of std's dlmalloc: smaller in the wasm and faster (measured in
// BENCHMARKS.md). The page runs on one thread, which is what this allocator assumes.
#[cfg(all(not(target_feature = "atomics"), target_family = "wasm"))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

fn main() {
    // Panics otherwise vanish into "unreachable executed"; the hook puts them in the
    // console. Debug builds only: it pulls in the panic message formatting, which costs a
    // release page several KB for text no visitor reads.
    #[cfg(debug_assertions)]
    console_error_panic_hook::set_once();
    // The static prompt index.html showed meanwhile gives way to the app's, with what was
    // typed into it (early_prompt).
    let early = early_prompt::take();
    leptos::mount::mount_to_body(move || leptos::view! { <app::App early /> });
    early_prompt::restore_focus();
}

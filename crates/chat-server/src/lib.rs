//! The chat server as a library, so integration tests and benchmarks start the real thing
//! on an ephemeral port. One message's path through it:
//! `app` (HTTP: grpc-web layer, CORS, static files) -> `service` (gRPC handlers) ->
//! `hub` (rooms by name) -> `room` (ids, presence) -> `store` (SQLite or PostgreSQL, group
//! commit) -> `fanout` (the room's ring of encoded events) -> `subscription` (one
//! subscriber's stream).
//! Who is speaking: `sessions` (the in-memory registry every call checks) and `accounts`
//! (Join, Register, SignIn, ...: `passwords`, `guessing`, and the sessions kept in `store`).

pub mod accounts;
pub mod address_budgets;
pub mod app;
pub mod bus;
pub mod client_addr;
pub mod client_stream;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod connection_caps;
pub mod direct;
pub mod error;
pub mod fanout;
pub mod guessing;
pub mod hub;
pub mod idempotency;
pub mod idle_timeout;
pub mod limits;
pub mod message_changes;
pub mod metrics_endpoint;
pub mod page_headers;
pub mod passwords;
pub mod ring_budget;
pub mod room;
pub mod room_access;
pub mod room_creation;
pub mod room_members;
pub mod search;
pub mod service;
pub mod sessions;
pub mod shared_rooms;
pub mod shutdown;
pub mod static_files;
pub mod store;
pub mod stream_caps;
pub mod subscription;
pub mod tls;
pub mod validate;
pub mod wall_clock;

/// The tests' own PostgreSQL, shared with the integration tests (one file, two users).
#[cfg(test)]
#[path = "../tests/common/pg.rs"]
mod test_pg;

pub use config::Config;
pub use hub::RoomHub;
pub use shutdown::Shutdown;

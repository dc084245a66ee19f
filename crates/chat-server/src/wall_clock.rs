//! The wall clock, in the form the database and the protocol keep times: milliseconds since
//! the Unix epoch. It can jump (NTP, an operator), so it only stamps and ages records;
//! timeouts and rate limits use tokio's monotonic `Instant`.
use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in milliseconds since the Unix epoch (0 if the clock is set before 1970).
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

//! The room list as every server sharing the database sees it: creating a room under the
//! cap, and the page of most recently active rooms.
//!
//! The cap is counted in the database, not in a server's memory, so servers creating the
//! last rooms at the same moment cannot pass it together: every creation takes one
//! advisory lock, counts and inserts in one transaction. Creation is rare (a few per
//! hour per person, see `room_creation`), so the lock costs nothing a sender waits on.
use super::{error, Pool};
use crate::store::{RoomCreated, StoreError, StoredRoom};

/// Any fixed number, other than the migrations': the lock room creations queue on.
const ROOM_CAP_LOCK: i64 = 0x0063_6861_7463_6170; // "chatcap"

/// Records `name`, created at `created_at_ms`, unless `cap` rooms exist already; for a
/// conversation (`direct`, a name starting with `@`), unless `cap` conversations do.
pub(in crate::store) async fn create_within(
    pool: &Pool,
    name: &str,
    created_at_ms: i64,
    cap: usize,
) -> Result<RoomCreated, StoreError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await.map_err(error)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&ROOM_CAP_LOCK])
        .await
        .map_err(error)?;
    // Under the lock nobody else creates, so the count holds until commit. (A message's
    // upsert may still bring back a room dropped meanwhile, which was counted before.)
    let row = tx
        .query_one(
            "SELECT count(*) FILTER (WHERE (name LIKE '@%') = ($1::text LIKE '@%')),
                    bool_or(name = $1)
             FROM rooms",
            &[&name],
        )
        .await
        .map_err(error)?;
    let (count, exists): (i64, Option<bool>) = (row.get(0), row.get(1));
    if exists == Some(true) {
        return Ok(RoomCreated::Existed);
    }
    if count as usize >= cap {
        return Ok(RoomCreated::Full);
    }
    tx.execute(
        "INSERT INTO rooms (name, created_at_ms, last_active_ms) VALUES ($1, $2, $2)
         ON CONFLICT (name) DO NOTHING",
        &[&name, &created_at_ms],
    )
    .await
    .map_err(error)?;
    tx.commit().await.map_err(error)?;
    Ok(RoomCreated::Created)
}

/// The `limit` most recently active rooms, most recent first (ties by name), and how many
/// rooms there are; conversations (`direct`) are neither.
pub(in crate::store) async fn page(
    pool: &Pool,
    limit: usize,
) -> Result<(Vec<StoredRoom>, usize), StoreError> {
    let (_permit, conn) = pool.read().await?;
    let stmt = conn
        .prepare_cached(
            "SELECT name, last_id, GREATEST(last_active_ms, created_at_ms) AS active,
                    count(*) OVER ()
             FROM rooms WHERE name NOT LIKE '@%' ORDER BY active DESC, name LIMIT $1",
        )
        .await
        .map_err(error)?;
    let rows = conn.query(&stmt, &[&(limit as i64)]).await.map_err(error)?;
    let total = rows.first().map_or(0, |row| row.get::<_, i64>(3) as usize);
    let rooms = rows
        .iter()
        .map(|row| StoredRoom {
            name: row.get(0),
            last_id: row.get::<_, i64>(1) as u64,
            last_active_ms: row.get::<_, i64>(2).max(0) as u64,
        })
        .collect();
    Ok((rooms, total))
}

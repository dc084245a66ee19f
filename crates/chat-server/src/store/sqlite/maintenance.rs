//! What an operator does to the database file from the outside (`chat-server backup`,
//! `chat-server check`), safe while a server is running on it: WAL lets a reader take a
//! consistent snapshot without stopping the writer, so neither waits for the other.
//! Neither creates a missing database, and a backup appears whole or not at all.
use std::path::{Path, PathBuf};

use rusqlite::{
    backup::{Backup, StepResult},
    Connection, OpenFlags,
};

use super::schema::BUSY_TIMEOUT;

#[derive(Debug, thiserror::Error)]
pub enum MaintenanceError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("{path} already exists; choose a new file for the backup")]
    Exists { path: PathBuf },
    #[error("backing up to {path} failed: {source}")]
    Backup {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("could not move the finished backup to {path}: {source}")]
    Rename {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the integrity check could not run: {0}")]
    Check(rusqlite::Error),
}

/// An existing database, for reading only.
fn open_existing(db: &Path) -> Result<Connection, MaintenanceError> {
    let open = || {
        let conn = Connection::open_with_flags(
            db,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        Ok(conn)
    };
    open().map_err(|source| MaintenanceError::Open {
        path: db.to_owned(),
        source,
    })
}

/// Copies the database `db` to the new file `to`, as one snapshot: every message committed
/// before the copy started is in it, nothing half-committed. The copy is written beside
/// `to` and renamed into place when complete.
pub fn backup(db: &Path, to: &Path) -> Result<(), MaintenanceError> {
    if to.exists() {
        return Err(MaintenanceError::Exists {
            path: to.to_owned(),
        });
    }
    let src = open_existing(db)?;
    let mut partial = to.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let failed = |source| MaintenanceError::Backup {
        path: to.to_owned(),
        source,
    };
    let copied = (|| {
        let mut dst = Connection::open(&partial)?;
        {
            let backup = Backup::new(&src, &mut dst)?;
            // -1: every page in one step, under one read transaction, so the copy is one
            // snapshot; in WAL mode that read does not hold up the server's commits. Busy
            // comes back only after the busy timeout: a lock held that long is a failure.
            loop {
                match backup.step(-1)? {
                    StepResult::Done => break,
                    StepResult::More => continue,
                    _ => {
                        return Err(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                            Some("the database stayed locked".into()),
                        ))
                    }
                }
            }
        }
        dst.close().map_err(|(_, err)| err)
    })();
    if let Err(err) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(err));
    }
    std::fs::rename(&partial, to).map_err(|source| {
        let _ = std::fs::remove_file(&partial);
        MaintenanceError::Rename {
            path: to.to_owned(),
            source,
        }
    })
}

/// SQLite's `integrity_check` of `db`: `Ok(vec![])` when sound, else what is wrong with
/// it (a file too damaged to check at all says so, as its one finding).
pub fn check(db: &Path) -> Result<Vec<String>, MaintenanceError> {
    let conn = open_existing(db)?;
    let found: rusqlite::Result<Vec<String>> = conn
        .prepare("PRAGMA integrity_check")
        .and_then(|mut stmt| stmt.query_map([], |row| row.get(0))?.collect());
    match found {
        Ok(found) if found == ["ok"] => Ok(Vec::new()),
        Ok(found) => Ok(found),
        Err(err)
            if matches!(
                err.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
            ) =>
        {
            Ok(vec![err.to_string()])
        }
        Err(err) => Err(MaintenanceError::Check(err)),
    }
}

//! Where `--db` points: a file path (SQLite) or a `postgres://` / `postgresql://` URL
//! (PostgreSQL). Anything else is a path, as it always was, so no existing command line
//! changes meaning. Shown without its password, so logs and errors never carry it.
use std::{fmt, path::PathBuf, str::FromStr};

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// A libpq-style URL, e.g. `postgres://chat@db.example/chat`.
    Postgres(String),
}

impl Database {
    /// The SQLite file, if that is what this is.
    pub fn sqlite_path(&self) -> Option<&std::path::Path> {
        match self {
            Database::Sqlite(path) => Some(path),
            Database::Postgres(_) => None,
        }
    }
}

impl FromStr for Database {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.get(..13).unwrap_or(s).to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            Ok(Database::Postgres(s.to_owned()))
        } else {
            Ok(Database::Sqlite(PathBuf::from(s)))
        }
    }
}

impl From<PathBuf> for Database {
    fn from(path: PathBuf) -> Self {
        Database::Sqlite(path)
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "{}", path.display()),
            Database::Postgres(url) => f.write_str(&without_password(url)),
        }
    }
}

/// Debug is Display: the URL's password must not reach a log through `{:?}` either.
impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// `scheme://user:secret@host/db` -> `scheme://user:***@host/db`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The authority ends at the first '/', '?' or '#'; its userinfo at its last '@'.
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_postgres_and_everything_else_a_path() {
        let db = |s: &str| s.parse::<Database>().unwrap();
        assert_eq!(db("chat.db"), Database::Sqlite("chat.db".into()));
        assert_eq!(
            db("/var/lib/chat/postgres.db"),
            Database::Sqlite("/var/lib/chat/postgres.db".into())
        );
        assert_eq!(
            db("postgres://h/c"),
            Database::Postgres("postgres://h/c".into())
        );
        assert_eq!(
            db("PostgreSQL://h/c"),
            Database::Postgres("PostgreSQL://h/c".into())
        );
    }

    #[test]
    fn the_password_is_never_shown() {
        let db: Database = "postgres://chat:s3cret@db.example:5432/chat?sslmode=disable"
            .parse()
            .unwrap();
        let shown = format!("{db} {db:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://chat:***@db.example:5432/chat?sslmode=disable"));
        let plain: Database = "postgres://chat@db.example/chat".parse().unwrap();
        assert_eq!(plain.to_string(), "postgres://chat@db.example/chat");
    }
}

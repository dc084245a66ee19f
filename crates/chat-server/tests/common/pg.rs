//! A PostgreSQL of the tests' own: Debian's postgresql-15 binaries (scripts/setup.sh
//! installs them), a fresh cluster in a temp dir, on a free loopback port with its unix
//! socket in that dir, so nothing on the machine is touched or needed.
//!
//! `shared()` is one instance per test binary; each test takes a `Database` of its own
//! in it (created fresh, dropped when it goes), so tests run in parallel. A test that
//! stops the server (`Instance::stop`, `start_again`) starts an `Instance` of its own.
//! PostgreSQL refuses to run as root, so as root it runs as the `postgres` user. Statics
//! are never dropped, and a test may panic or be killed: a watcher process stops the
//! cluster and removes its dir once the test process is gone, whatever ended it.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicU32, Ordering},
        Mutex, OnceLock,
    },
    time::Duration,
};

/// Where Debian's postgresql-15 puts its programs.
const BIN: &str = "/usr/lib/postgresql/15/bin";

/// How long the cluster may take to start or stop.
const PG_WAIT: Duration = Duration::from_secs(60);

pub struct Instance {
    /// Holds `data/` (the cluster), the unix socket and `log`.
    dir: PathBuf,
    port: u16,
    /// Stops the cluster and removes `dir` once this process is gone.
    watcher: Mutex<Option<Child>>,
}

/// One instance for the whole test binary, started on first use.
pub fn shared() -> &'static Instance {
    static SHARED: OnceLock<Instance> = OnceLock::new();
    SHARED.get_or_init(Instance::start)
}

/// A fresh database in the shared instance.
pub fn database() -> Database {
    shared().database()
}

fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program` from BIN, run as the `postgres` user when we are root.
fn pg_command(program: &str) -> Command {
    let path = format!("{BIN}/{program}");
    let mut cmd = if as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--", &path]);
        cmd
    } else {
        Command::new(path)
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

fn run(mut cmd: Command, what: &str, log: &Path) {
    let status = cmd.status().unwrap_or_else(|err| {
        panic!("{what}: {err} (is postgresql-15 installed? scripts/setup.sh installs it)")
    });
    if !status.success() {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{what} failed ({status}):\n{log}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Instance {
    /// initdb into a new temp dir, then start the cluster; panics with PostgreSQL's log
    /// if either fails.
    pub fn start() -> Instance {
        let dir = tempfile::Builder::new()
            .prefix("chat-test-pg-")
            .tempdir()
            .unwrap()
            .keep();
        if as_root() {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown the temp dir to postgres");
        }
        let log = dir.join("log");
        let mut initdb = pg_command("initdb");
        // No sync, no locale: fast and the same everywhere. Trust: loopback and a socket
        // in a private dir only.
        initdb.arg("-D").arg(dir.join("data")).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "-N",
        ]);
        initdb.stderr(std::fs::File::create(&log).unwrap());
        if as_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&log)
                .status();
        }
        run(initdb, "initdb", &log);
        let instance = Instance {
            port: free_port(),
            watcher: Mutex::new(None),
            dir,
        };
        instance.start_again();
        instance.watch();
        instance
    }

    /// Starts the cluster again after `stop` (on the same port, with the same data).
    pub fn start_again(&self) {
        let mut pg_ctl = pg_command("pg_ctl");
        // fsync off: tests need no crash safety from the OS, and it saves time; commits
        // still wait for their WAL write, so a stop loses nothing acknowledged.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            self.port,
            self.dir.display()
        );
        pg_ctl
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args([
                "-o",
                &options,
                "-w",
                "-t",
                &PG_WAIT.as_secs().to_string(),
                "start",
            ]);
        run(pg_ctl, "pg_ctl start", &self.dir.join("log"));
    }

    /// Stops the cluster (fast: open connections are cut, what was committed stays).
    pub fn stop(&self) {
        let mut pg_ctl = pg_command("pg_ctl");
        pg_ctl.arg("-D").arg(self.dir.join("data")).args([
            "-m",
            "fast",
            "-w",
            "-t",
            &PG_WAIT.as_secs().to_string(),
            "stop",
        ]);
        run(pg_ctl, "pg_ctl stop", &self.dir.join("log"));
    }

    /// A URL for database `name` on this instance.
    pub fn url_for(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// The URL of the `postgres` database (every cluster has it).
    pub fn url(&self) -> String {
        self.url_for("postgres")
    }

    /// Runs one SQL statement as the superuser, over TCP, in the `postgres` database.
    pub fn sql(&self, statement: &str) {
        self.sql_in("postgres", statement)
    }

    /// Runs one SQL statement as the superuser in database `name`.
    pub fn sql_in(&self, name: &str, statement: &str) {
        let output = Command::new(format!("{BIN}/psql"))
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url_for(name),
                "-c",
                statement,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "psql {statement}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// A new, empty database, dropped when the `Database` goes.
    pub fn database(&self) -> Database {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "chat_test_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.sql(&format!("CREATE DATABASE {name}"));
        Database {
            url: self.url_for(&name),
            name,
            admin: self.url(),
        }
    }

    /// Starts the process that cleans up after this one (see the module doc).
    fn watch(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {stop}; rm -rf '{dir}'",
            pid = std::process::id(),
            stop = self.stop_command(),
            dir = self.dir.display()
        );
        let watcher = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the watcher");
        *self.watcher.lock().unwrap() = Some(watcher);
    }

    /// A shell command that stops the cluster at once, if it is running.
    fn stop_command(&self) -> String {
        let pg_ctl = format!(
            "{BIN}/pg_ctl -D '{}' -m immediate -w stop",
            self.dir.join("data").display()
        );
        match as_root() {
            true => format!("runuser -u postgres -- {pg_ctl} >/dev/null 2>&1"),
            false => format!("{pg_ctl} >/dev/null 2>&1"),
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(mut watcher) = self.watcher.lock().unwrap().take() {
            let _ = watcher.kill();
            let _ = watcher.wait();
        }
        let _ = Command::new("sh")
            .args(["-c", &self.stop_command()])
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A database of one test's own; dropped (connections and all) when this goes.
pub struct Database {
    pub url: String,
    pub name: String,
    admin: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        // FORCE: a server of the test may still hold connections. Best effort: the
        // instance may be stopped, and then its dir goes anyway.
        let _ = Command::new(format!("{BIN}/psql"))
            .args(["-X", "-q", "-d", &self.admin, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

//! `chat-server`: parses the config, binds, serves until Ctrl-C or SIGTERM; or, given an
//! operation (`backup FILE`, `check`), does that to the database and exits.
use std::{io::IsTerminal, path::PathBuf, process::ExitCode, time::Duration};

use chat_server::{app, config::LogFormat, store::maintenance, Config, Shutdown};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long open connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Parser)]
#[command(
    name = "chat-server",
    version,
    about = "Real-time chat over gRPC and grpc-web"
)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    operation: Option<Operation>,
}

/// What an operator does to the database (`--db`) instead of serving; safe while another
/// chat-server serves from it.
#[derive(Debug, Subcommand)]
enum Operation {
    /// Copy the database to FILE (a new file) as one consistent snapshot, while the server
    /// keeps running: SQLite's online backup. Restore by stopping the server and putting
    /// FILE in the database's place.
    Backup { file: PathBuf },
    /// Check the database for corruption (SQLite's integrity_check): exit status 0 when
    /// sound, 1 when not (what is wrong goes to stderr), 2 when it cannot be read.
    Check,
}

fn main() -> ExitCode {
    let Cli { config, operation } = Cli::parse();
    init_logs(config.log_format);
    let Some(operation) = operation else {
        return serve(config);
    };
    // Both are SQLite's own tools; PostgreSQL has its own, which know its files.
    let Some(db) = config.db.sqlite_path() else {
        let (name, instead, status) = match operation {
            Operation::Backup { .. } => (
                "backup",
                "back it up with pg_dump (pg_dump --format=custom --file=FILE URL)",
                ExitCode::FAILURE,
            ),
            Operation::Check => (
                "check",
                "check it with pg_amcheck (pg_amcheck --all, as a superuser)",
                ExitCode::from(2),
            ),
        };
        eprintln!(
            "chat-server {name}: works on a SQLite file, and {} is a PostgreSQL database; {instead}",
            config.db
        );
        return status;
    };
    match operation {
        Operation::Backup { file } => match maintenance::backup(db, &file) {
            Ok(()) => {
                eprintln!("backed up {} to {}", db.display(), file.display());
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("chat-server backup: {err}");
                ExitCode::FAILURE
            }
        },
        Operation::Check => match maintenance::check(db) {
            Ok(problems) if problems.is_empty() => {
                eprintln!("{}: ok", db.display());
                ExitCode::SUCCESS
            }
            Ok(problems) => {
                eprintln!("{}: damaged", db.display());
                for problem in problems {
                    eprintln!("  {problem}");
                }
                ExitCode::from(1)
            }
            Err(err) => {
                eprintln!("chat-server check: {err}");
                ExitCode::from(2)
            }
        },
    }
}

/// Logs go to stderr: for people (colours on a terminal) or one JSON object per line for
/// log shippers, each event's fields at the top level.
fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

#[tokio::main]
async fn serve(config: Config) -> ExitCode {
    match run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(%err, "chat-server stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> std::io::Result<()> {
    // SIGHUP's default is to end the process. tokio's handler, once installed, stays for
    // the life of the process, so a reload sent while the server starts is not fatal; once
    // up, the server acts on it (`tls::reload_on_hangup`).
    #[cfg(unix)]
    drop(tokio::signal::unix::signal(
        tokio::signal::unix::SignalKind::hangup(),
    )?);
    let listener = TcpListener::bind(config.addr).await?;
    let shutdown = Shutdown::new();
    let mut server = tokio::spawn(app::serve(listener, config, shutdown.clone()));
    tokio::select! {
        _ = wait_for_signal() => {}
        // It failed to start (the database, the TLS certificate, --metrics-addr): exit
        // saying why.
        failed = &mut server => return failed.map_err(std::io::Error::other)?,
    }
    tracing::info!("shutting down: ending open streams");
    shutdown.trigger();
    match tokio::time::timeout(DRAIN_TIMEOUT, server).await {
        Ok(joined) => joined.map_err(std::io::Error::other)??,
        Err(_) => tracing::warn!("connections still open after {DRAIN_TIMEOUT:?}; exiting anyway"),
    }
    tracing::info!("bye");
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

//! `chat-server`: parses the config, binds, serves until Ctrl-C or SIGTERM.
use std::{io::IsTerminal, time::Duration};

use chat_server::{app, Config, Shutdown};
use clap::Parser;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// How long open connections get to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let config = Config::parse();
    let listener = TcpListener::bind(config.addr).await?;
    tracing::info!(addr = %listener.local_addr()?, static_dir = ?config.static_dir, "chat-server listening");

    let shutdown = Shutdown::new();
    let server = tokio::spawn(app::serve(listener, config, shutdown.clone()));
    wait_for_signal().await;
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

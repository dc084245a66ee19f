//! `chat-bench`: runs the load, prints progress to stderr and the report to stdout, and
//! exits non-zero when any message was lost, duplicated or reordered.
use std::process::ExitCode;

use chat_bench::{baseline, BenchConfig};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "chat-bench",
    version,
    about = "Fan-out load generator for chat-server (loopback only), with a raw-TCP baseline",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchConfig,
}

#[derive(Subcommand)]
enum Command {
    /// The raw-TCP fan-out that --baseline starts as a child process.
    #[command(hide = true)]
    BaselineServer,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::BaselineServer) = cli.command {
        return match baseline::main().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("baseline-server: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let exe = std::env::current_exe().ok();
    match chat_bench::run(&cli.bench, exe.as_deref()).await {
        Ok(report) => {
            print!("{report}");
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("chat-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

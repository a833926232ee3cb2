//! `midogw`: the gateway appliance's command line.
//!
//! `midogw run --config FILE` brings up DPDK, the ports and the workers and runs until SIGINT or
//! SIGTERM; `midogw check-config FILE` reports every problem in a config file with its location.

mod config;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "midogw", version, about = "MidoNet gateway node on DPDK poll-mode cores")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the appliance until SIGINT/SIGTERM (or --duration).
    Run {
        /// Config file (see appliance/midogw.example.toml and docs/configuration.md).
        #[arg(long, short)]
        config: PathBuf,
        /// Stop by itself after this many seconds (demos, benchmarks).
        #[arg(long, value_parser = parse_seconds)]
        duration: Option<Duration>,
        /// Print port counters every this many seconds (0: only at exit).
        #[arg(long, default_value = "10", value_parser = parse_seconds)]
        stats_interval: Duration,
        /// Write the final counters as JSON to this file at exit.
        #[arg(long)]
        stats_json: Option<PathBuf>,
    },
    /// Check a config file and report every problem with its line and column.
    CheckConfig {
        /// Config file to check.
        file: PathBuf,
    },
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let secs: f64 = text.parse().map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is not a valid number of seconds"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("MIDOGW_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { file } => check_config(&file),
        Command::Run { config, duration, stats_interval, stats_json } => {
            let options = run::Options { duration, stats_interval, stats_json };
            match load(&config).and_then(|cfg| run::run(&cfg, &options)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("midogw: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn load(path: &std::path::Path) -> anyhow::Result<config::Config> {
    let facts = config::SystemFacts::probe();
    config::load(path, &facts)
        .map_err(anyhow::Error::from)
        .context("invalid configuration (run `midogw check-config FILE` for every problem)")
}

fn check_config(path: &std::path::Path) -> ExitCode {
    let facts = config::SystemFacts::probe();
    match config::load(path, &facts) {
        Ok(cfg) => {
            println!(
                "{}: OK ({} port(s), {} worker(s), {} mbufs)",
                path.display(),
                cfg.ports.len(),
                cfg.workers.len(),
                cfg.mempool_mbufs
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            println!("{}: {} problem(s)", path.display(), problems.list.len());
            ExitCode::FAILURE
        }
    }
}

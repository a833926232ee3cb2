//! `midogw`: the gateway appliance's command line.
//!
//! `midogw run --config FILE` brings up DPDK, the ports and the workers and runs until SIGINT or
//! SIGTERM; `midogw check-config FILE` reports every problem in a config file with its location;
//! `midogw topology check FILE --config CONFIG` does the same for a topology file (docs/topology.md);
//! `midogw topology import FILE --config CONFIG` writes a topology file into the store (appliance/import.rs).
//! `midogw hash-password` turns a password on stdin into the PHC string `[[auth.account]]` holds.

mod config;
mod feed;
mod host;
mod import;
mod metrics;
mod rest;
mod run;
mod topology;

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
    /// Read a password from stdin (one line) and print its argon2 PHC string for [[auth.account]] password_hash.
    HashPassword,
    /// The declarative topology file (docs/topology.md).
    #[command(subcommand)]
    Topology(TopologyCommand),
}

#[derive(Debug, Subcommand)]
enum TopologyCommand {
    /// Check a topology file against a config's ports and report every problem with its location.
    Check {
        /// Topology file to check.
        file: PathBuf,
        /// The config whose [[port]] names the topology binds to.
        #[arg(long, short)]
        config: PathBuf,
        /// Print the loaded topology as sorted facts (for comparing it with an imported store).
        #[arg(long, hide = true)]
        dump: bool,
    },
    /// Write a topology file into the store the config names ([store]), through the same
    /// validation as the REST API, and print what was created with its ids.
    Import {
        /// Topology file to import.
        file: PathBuf,
        /// The config whose [store] receives the topology and whose [[port]]s it binds to.
        #[arg(long, short)]
        config: PathBuf,
        /// Delete what an earlier import created (tenantId "midogw-import", zones midogw-*) first.
        #[arg(long)]
        replace: bool,
        /// Import without what the store cannot hold (IPv6 routes, static MACs), listing it.
        #[arg(long)]
        skip_unsupported: bool,
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
        Command::HashPassword => match hash_password() {
            Ok(phc) => {
                println!("{phc}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("midogw: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::Topology(TopologyCommand::Check { file, config, dump }) => check_topology(&file, &config, dump),
        Command::Topology(TopologyCommand::Import { file, config, replace, skip_unsupported }) => {
            import_topology(&file, &config, &import::Options { replace, skip_unsupported })
        }
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
    let mut cfg = config::load(path, &facts)
        .map_err(anyhow::Error::from)
        .context("invalid configuration (run `midogw check-config FILE` for every problem)")?;
    if let config::TopologySource::File(t) = &cfg.topology {
        cfg.topology = config::TopologySource::File(relative_to(path, t));
    }
    cfg.store.path = relative_to(path, &cfg.store.path);
    Ok(cfg)
}

/// The PHC string of the password on stdin's first line (without its line ending).
fn hash_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).context("read the password from stdin")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    anyhow::ensure!(!password.is_empty(), "empty password on stdin");
    control::LocalAuth::hash_password(password).map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// `file` as written in the config at `config`: relative to the config file's directory.
fn relative_to(config: &std::path::Path, file: &std::path::Path) -> PathBuf {
    match config.parent() {
        Some(dir) if file.is_relative() => dir.join(file),
        _ => file.to_path_buf(),
    }
}

/// Binds the topology to the config's ports by name; ids are in config order, which is the order
/// `run` attaches them in.
fn check_topology(file: &std::path::Path, config_path: &std::path::Path, dump: bool) -> ExitCode {
    let facts = config::SystemFacts::probe();
    let cfg = match config::load(config_path, &facts) {
        Ok(cfg) => cfg,
        Err(problems) => {
            println!("{problems}");
            println!("{}: {} problem(s)", config_path.display(), problems.list.len());
            return ExitCode::FAILURE;
        }
    };
    let ports: Vec<(String, u16)> = cfg.ports.iter().enumerate().map(|(i, p)| (p.name.clone(), i as u16)).collect();
    match topology::load(file, &ports, 1) {
        Ok(snap) => {
            if dump {
                for line in import::describe(&snap) {
                    println!("{line}");
                }
                return ExitCode::SUCCESS;
            }
            let bound = (0..ports.len() as u16).filter(|&i| snap.port_by_dpdk_port(i).is_some()).count();
            println!(
                "{}: OK ({} router(s), {} bridge(s), {} port(s), {bound} bound to DPDK ports, {} chain(s), {} host(s){})",
                file.display(),
                snap.routers().len(),
                snap.bridges().len(),
                snap.ports().len(),
                snap.chains().len(),
                snap.hosts().len(),
                if snap.underlay().is_some() { ", an underlay" } else { "" }
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            println!("{}: {} problem(s)", file.display(), problems.list.len());
            ExitCode::FAILURE
        }
    }
}

/// Imports a topology file into the config's store; the file's problems are printed like
/// `topology check`'s, with nothing written.
fn import_topology(file: &std::path::Path, config_path: &std::path::Path, options: &import::Options) -> ExitCode {
    let cfg = match load(config_path) {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("midogw: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    match import::import(file, &cfg, options) {
        Ok(summary) => {
            print!("{summary}");
            println!("{}: imported into {}", file.display(), store_name(&cfg));
            ExitCode::SUCCESS
        }
        Err(import::ImportError::File(problems)) => {
            println!("{problems}");
            println!("{}: {} problem(s); nothing was written to the store", file.display(), problems.list.len());
            ExitCode::FAILURE
        }
        Err(import::ImportError::Other(e)) => {
            eprintln!("midogw: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn store_name(cfg: &config::Config) -> String {
    match &cfg.store.zookeeper {
        Some(zk) => format!("zookeeper://{}{}", zk.hosts, zk.root),
        None => cfg.store.path.display().to_string(),
    }
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

//! Portcullis benchmarks. `portcullis-bench run` measures everything in one run and writes BENCHMARKS.md;
//! the other subcommands are the roles it starts as separate, CPU-pinned processes.

mod console;
mod ha;
mod idp;
mod large;
mod loadgen;
mod nodes;
mod run;
mod streams;
mod sync;
mod upstream;

use std::time::Duration;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "portcullis-bench",
    about = "Portcullis benchmarks (ratios against nginx and direct, same run)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// A minimal upstream answering 200.
    Upstream {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// The benchmark identity provider.
    Idp,
    /// Open-loop constant-rate load; prints a JSON summary.
    Loadgen {
        #[arg(long)]
        url: String,
        #[arg(long)]
        rate: f64,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// none, unique, fixed:<token>, auth:<Authorization value>, cycle:<n> or cookie:<Cookie value>
        #[arg(long, default_value = "none")]
        tokens: loadgen::Tokens,
    },
    /// Runs every benchmark and writes the report.
    Run(run::Settings),
    /// Incremental sync against full snapshots, in-process, same run; prints a table.
    Sync(sync::Settings),
    /// gRPC unary calls/s and WebSocket round trips/s through a node and direct; a table.
    Streams(streams::Settings),
    /// Writes/s and write → all-ACKed on sled and on two control planes sharing PostgreSQL; a table.
    Ha(ha::Settings),
    /// Time to render console pages (the list of 1,000 routes), in-process; a table.
    Console(console::Settings),
    /// Simulated nodes: real enrollment, mTLS streams, heartbeats, hash-checked ACKs; no proxy.
    Nodes(nodes::Settings),
    /// One control plane and many simulated nodes: enrollment, memory, idle CPU, writes, a reconnect
    /// storm; a table.
    Large(large::Settings),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    match cli.cmd {
        Cmd::Upstream { port } => rt.block_on(upstream::serve(port)),
        Cmd::Idp => rt.block_on(idp::serve()),
        Cmd::Loadgen {
            url,
            rate,
            seconds,
            connections,
            tokens,
        } => {
            let out = rt.block_on(loadgen::run(loadgen::Load {
                url,
                rate,
                duration: Duration::from_secs(seconds),
                connections,
                tokens,
            }))?;
            println!("{out}");
            Ok(())
        }
        Cmd::Run(settings) => {
            // The orchestrator hosts in-process data planes for the propagation runs: give it both cores.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(run::run(settings))
        }
        Cmd::Streams(settings) => rt.block_on(streams::run(settings)),
        Cmd::Sync(settings) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(sync::run(settings))
        }
        Cmd::Ha(settings) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(ha::run(settings))
        }
        Cmd::Console(settings) => rt.block_on(console::run(settings)),
        Cmd::Nodes(settings) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()?;
            rt.block_on(nodes::run(settings))
        }
        Cmd::Large(settings) => rt.block_on(large::run(settings)),
    }
}

//! `sextant`: the command-line front end. Argument parsing, progress display and exit codes live
//! here; everything else is in the library crates.
#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
mod bench;
#[cfg(feature = "embed")]
mod embed;

use clap::{Parser, Subcommand};

/// Sextant: an embedding database.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmarks (JSON + Markdown output).
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Embed texts (one per line) with a local model into a float32 .npy file.
    #[cfg(feature = "embed")]
    Embed(embed::EmbedArgs),
    /// Rank passages (one per line) against a query with a cross-encoder.
    #[cfg(feature = "embed")]
    Rerank(embed::RerankArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        #[cfg(feature = "bench")]
        Command::Bench(cmd) => bench::run(cmd),
        #[cfg(feature = "embed")]
        Command::Embed(args) => embed::run_embed(args),
        #[cfg(feature = "embed")]
        Command::Rerank(args) => embed::run_rerank(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

//! `sextant`: the command-line front end. Argument parsing, progress display and exit codes live
//! here; everything else is in the library crates.
#![forbid(unsafe_code)]

#[cfg(feature = "bench")]
mod bench;
#[cfg(all(feature = "bench", feature = "embed"))]
mod bench_embed;
mod db;
#[cfg(feature = "embed")]
mod docs;
#[cfg(feature = "embed")]
mod embed;
#[cfg(feature = "embed")]
mod llm;
#[cfg(feature = "embed")]
mod models;

use clap::{Parser, Subcommand};

/// Sextant: an embedding database.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about, long_about = None)]
struct Cli {
    #[command(flatten)]
    db: db::DbArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create, list, inspect, optimize and delete collections.
    #[command(subcommand)]
    Collection(db::CollectionCommand),
    /// Create, switch, list and delete aliases.
    #[command(subcommand)]
    Alias(db::AliasCommand),
    /// Insert or replace points from a file; exits 0 only once they are durable.
    Upsert(db::UpsertArgs),
    /// Fetch points by id.
    Get {
        /// Collection or alias.
        name: String,
        /// Point ids.
        #[arg(required = true)]
        ids: Vec<String>,
        /// Include stored vectors.
        #[arg(long)]
        with_vector: bool,
        #[command(flatten)]
        tenant: db::TenantArgs,
    },
    /// Delete points by id or by filter.
    Delete {
        /// Collection or alias.
        name: String,
        /// Point ids.
        ids: Vec<String>,
        /// Delete every point matching this filter (JSON) instead.
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        tenant: db::TenantArgs,
    },
    /// Count points (matching a filter).
    Count {
        /// Collection or alias.
        name: String,
        /// Payload filter (JSON).
        #[arg(long)]
        filter: Option<String>,
        #[command(flatten)]
        tenant: db::TenantArgs,
    },
    /// Multi-tenant collections: list tenants with their point counts, or drop one tenant's
    /// points.
    #[command(subcommand)]
    Tenant(db::TenantCommand),
    /// Page through points, by id or by a payload key.
    Scroll(db::ScrollArgs),
    /// Search: by vector (`--vector`, `--vector-file`), or by text (`--text`, `--queries`) in a
    /// collection made by `ingest`, dense, BM25 or hybrid.
    Search(db::SearchArgs),
    /// Ingest documents (text, Markdown and HTML files, directories, JSONL records): chunk,
    /// embed, index for BM25 (and SPLADE); an unchanged document is a no-op, a changed one
    /// replaces its old chunks atomically.
    #[cfg(feature = "embed")]
    Ingest(docs::IngestArgs),
    /// Answer a question from a document collection: cited context within a token budget,
    /// or an answer with citations from a language model (`--llm`).
    #[cfg(feature = "embed")]
    Ask(docs::AskArgs),
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

/// Exit status of a command whose reader went away (`sextant … | head`): 128 + SIGPIPE, as
/// the shell reports for a process killed by it.
const EXIT_BROKEN_PIPE: i32 = 141;

/// `println!` panics when stdout is a closed pipe (Rust ignores SIGPIPE); a closed reader is a
/// normal end for a command-line tool, so that panic ends the process quietly instead.
fn exit_quietly_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to std") && message.contains("Broken pipe") {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        default(info);
    }));
}

fn main() -> std::process::ExitCode {
    exit_quietly_on_broken_pipe();
    // Model forward passes free and re-allocate large buffers every batch (see the function).
    #[cfg(feature = "embed")]
    sextant_embed::keep_inference_buffers();
    let cli = Cli::parse();
    let a = &cli.db;
    let result = match cli.command {
        Command::Collection(cmd) => db::run_collection(a, cmd),
        Command::Alias(cmd) => db::run_alias(a, cmd),
        Command::Upsert(up) => db::run_upsert(a, up),
        Command::Get {
            name,
            ids,
            with_vector,
            tenant,
        } => db::run_get(a, &name, &ids, with_vector, &tenant),
        Command::Delete {
            name,
            ids,
            filter,
            tenant,
        } => db::run_delete(a, &name, &ids, filter.as_deref(), &tenant),
        Command::Count {
            name,
            filter,
            tenant,
        } => db::run_count(a, &name, filter.as_deref(), &tenant),
        Command::Tenant(cmd) => db::run_tenant(a, cmd),
        Command::Scroll(s) => db::run_scroll(a, s),
        Command::Search(s) => db::run_search(a, s),
        #[cfg(feature = "embed")]
        Command::Ingest(i) => docs::run_ingest(a, i),
        #[cfg(feature = "embed")]
        Command::Ask(q) => docs::run_ask(a, q),
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

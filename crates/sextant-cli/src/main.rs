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
mod serve;

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
    /// Serve the data directory over HTTP: REST + JSON, OpenAPI at /openapi.json, the
    /// OpenAI-compatible /v1/embeddings, API keys, metrics, a web console at /.
    Serve(serve::ServeArgs),
    /// Make, list and revoke the server's API keys.
    #[command(subcommand)]
    Keys(serve::KeysCommand),
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

/// Subcommands with flags of their own named like the global options (`bench … --json PATH`,
/// `bench open --data DIR`): their arguments are left as they are.
const OWN_OPTIONS: &[&str] = &["bench", "embed", "rerank"];

/// The global options (`--data DIR`, `--durability POLICY`, `--json`) may come anywhere on the
/// command line; clap reads them before the subcommand only, so those given after it are moved
/// there (not past a `--`, and not for [`OWN_OPTIONS`]).
fn hoist_global_options(args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let takes_value = |a: &str| a == "--data" || a == "--durability";
    let is_global = |a: &str| {
        a == "--json"
            || takes_value(a)
            || a.starts_with("--data=")
            || a.starts_with("--durability=")
    };
    // The subcommand: the first argument that is neither an option nor an option's value.
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if takes_value(&a) {
            i += 2;
        } else if a.starts_with('-') {
            i += 1;
        } else {
            break;
        }
    }
    if i >= args.len() || OWN_OPTIONS.contains(&args[i].to_string_lossy().as_ref()) {
        return args;
    }
    let (mut front, mut rest) = (args[..i].to_vec(), Vec::new());
    let mut j = i;
    while j < args.len() {
        let a = args[j].to_string_lossy().into_owned();
        if a == "--" {
            rest.extend_from_slice(&args[j..]);
            break;
        }
        if is_global(&a) {
            front.push(args[j].clone());
            if takes_value(&a) && j + 1 < args.len() {
                front.push(args[j + 1].clone());
                j += 1;
            }
        } else {
            rest.push(args[j].clone());
        }
        j += 1;
    }
    front.extend(rest);
    front
}

fn main() -> std::process::ExitCode {
    exit_quietly_on_broken_pipe();
    // Model forward passes free and re-allocate large buffers every batch (see the function).
    #[cfg(feature = "embed")]
    sextant_embed::keep_inference_buffers();
    let cli = Cli::parse_from(hoist_global_options(std::env::args_os().collect()));
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
        Command::Serve(args) => serve::run_serve(a, args),
        Command::Keys(cmd) => serve::run_keys(a, cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

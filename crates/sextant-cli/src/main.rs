//! `sextant`: the command-line front end. Argument parsing, progress display and exit codes live
//! here; everything else is in the library crates (`sextant-service` for the product logic).
#![forbid(unsafe_code)]

#[cfg(feature = "embed")]
mod adapter;
#[cfg(feature = "bench")]
mod bench;
#[cfg(all(feature = "bench", feature = "embed"))]
mod bench_embed;
mod collection;
mod db;
#[cfg(feature = "embed")]
mod docs;
#[cfg(feature = "embed")]
mod drift;
#[cfg(feature = "embed")]
mod embed;
mod encryption;
#[cfg(feature = "embed")]
mod eval;
#[cfg(feature = "embed")]
mod eval_plots;
#[cfg(feature = "embed")]
mod finetune;
mod points;
#[cfg(feature = "embed")]
mod reindex;
mod search;
mod serve;
mod snapshot;

use clap::{Parser, Subcommand};
use sextant_core::ErrorKind;

/// What `--help` says about exit codes (kept next to [`exit_code`], which they document).
const EXIT_CODES_HELP: &str = "\
Exit codes:
  0    success
  1    internal error (I/O, corruption, a bug)
  2    invalid input (bad flag value, malformed file, refused option)
  3    not found (collection, alias, file, model)
  4    already exists
  5    conflict (settings fixed at creation, another model, data directory in use)
  6    unauthorized or forbidden
  7    overloaded: try again later
  8    `drift check --fail-on-alarm`: a drift alarm was raised
  141  the reader of the output went away (`sextant ... | head`)";

/// Sextant: an embedding database.
#[derive(Debug, Parser)]
#[command(name = "sextant", version, about, long_about = None, after_help = EXIT_CODES_HELP)]
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
    Collection(collection::CollectionCommand),
    /// Create, switch, list and delete aliases.
    #[command(subcommand)]
    Alias(collection::AliasCommand),
    /// Insert or replace points from a file; exits 0 only once they are durable.
    Upsert(points::UpsertArgs),
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
    /// Delete points by id or by filter, or documents by age.
    Delete {
        /// Collection or alias.
        name: String,
        /// Point ids.
        ids: Vec<String>,
        /// Delete every point matching this filter (JSON) instead.
        #[arg(long)]
        filter: Option<String>,
        /// Delete every document (all its chunks) of a document collection whose current
        /// version was ingested longer ago than this: a whole number and s, m, h or d (30d,
        /// 12h, 90m, 45s). Chunks ingested before ingest recorded `ingested_at` are kept.
        #[arg(long, value_name = "DURATION", conflicts_with_all = ["ids", "filter"])]
        older_than: Option<String>,
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
    /// Snapshots of collections: create (while writes go on), list, verify, restore (into a
    /// new collection, or replacing one atomically) and delete.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
    /// Whole-database backups: every collection (a snapshot each) and the aliases, into one
    /// directory; restore one into an empty data directory.
    #[command(subcommand)]
    Backup(snapshot::BackupCommand),
    /// Encryption at rest: make a master key, show what is encrypted, rotate the master key
    /// or a collection's data key.
    #[command(subcommand)]
    Encryption(encryption::EncryptionCommand),
    /// Multi-tenant collections: list tenants with their point counts, or drop one tenant's
    /// points.
    #[command(subcommand)]
    Tenant(points::TenantCommand),
    /// Page through points, by id or by a payload key.
    Scroll(points::ScrollArgs),
    /// Search: by vector (`--vector`, `--vector-file`), or by text (`--text`, `--queries`) in a
    /// collection made by `ingest`, dense, BM25 or hybrid.
    Search(search::SearchArgs),
    /// Ingest documents (text, Markdown and HTML files, directories, JSONL records): chunk,
    /// embed, index for BM25 (and SPLADE); an unchanged document is a no-op, a changed one
    /// replaces its old chunks atomically.
    #[cfg(feature = "embed")]
    Ingest(docs::IngestArgs),
    /// Answer a question from a document collection: cited context within a token budget,
    /// or an answer with citations from a language model (`--llm`).
    #[cfg(feature = "embed")]
    Ask(docs::AskArgs),
    /// Evaluate retrieval on a document collection against judged queries: every
    /// configuration (and the random, BM25 and exact dense baselines) at every metric and
    /// cut-off, latency, paired significance, TREC runs.
    #[cfg(feature = "embed")]
    Eval(eval::EvalArgs),
    /// Fine-tune a bi-encoder on judged queries (BEIR corpus, queries and qrels): MNRL with
    /// in-batch and BM25-mined hard negatives, AdamW; writes the model directory and a training
    /// card with nDCG@10 before and after on held-back queries.
    #[cfg(feature = "embed")]
    Finetune(finetune::FinetuneArgs),
    /// Query adapters: train a linear map of query embeddings against a collection's stored
    /// vectors (no re-embedding), attach, detach or show it.
    #[cfg(feature = "embed")]
    #[command(subcommand)]
    Adapter(adapter::AdapterCommand),
    /// Re-embed a document collection with a new model into a new collection (the source
    /// keeps serving and stays for rollback), after an estimate of time and space; then
    /// `eval --compare` the two and switch an alias.
    #[cfg(feature = "embed")]
    Reindex(reindex::ReindexArgs),
    /// Drift monitoring: pin the distribution of a collection's vectors, add canary queries
    /// with expected results, check them over time; alarms show in `collection info`.
    #[cfg(feature = "embed")]
    #[command(subcommand)]
    Drift(drift::DriftCommand),
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
    let takes_value = |a: &str| {
        a == "--data"
            || a == "--durability"
            || a == "--master-key-file"
            || a == "--recall-probe-rate"
    };
    let is_global = |a: &str| {
        a == "--json"
            || takes_value(a)
            || a.starts_with("--data=")
            || a.starts_with("--durability=")
            || a.starts_with("--master-key-file=")
            || a.starts_with("--recall-probe-rate=")
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
        Command::Collection(cmd) => collection::run_collection(a, cmd),
        Command::Alias(cmd) => collection::run_alias(a, cmd),
        Command::Upsert(up) => points::run_upsert(a, up),
        Command::Get {
            name,
            ids,
            with_vector,
            tenant,
        } => points::run_get(a, &name, &ids, with_vector, &tenant),
        // clap refuses --older-than together with ids or --filter.
        Command::Delete {
            name,
            older_than: Some(age),
            tenant,
            ..
        } => points::run_delete_older_than(a, &name, &age, &tenant),
        Command::Delete {
            name,
            ids,
            filter,
            older_than: None,
            tenant,
        } => points::run_delete(a, &name, &ids, filter.as_deref(), &tenant),
        Command::Count {
            name,
            filter,
            tenant,
        } => points::run_count(a, &name, filter.as_deref(), &tenant),
        Command::Tenant(cmd) => points::run_tenant(a, cmd),
        Command::Snapshot(cmd) => snapshot::run_snapshot(a, cmd),
        Command::Backup(cmd) => snapshot::run_backup(a, cmd),
        Command::Encryption(cmd) => encryption::run_encryption(a, cmd),
        Command::Scroll(s) => points::run_scroll(a, s),
        Command::Search(s) => search::run_search(a, s),
        #[cfg(feature = "embed")]
        Command::Ingest(i) => docs::run_ingest(a, i),
        #[cfg(feature = "embed")]
        Command::Ask(q) => docs::run_ask(a, q),
        #[cfg(feature = "embed")]
        Command::Eval(e) => eval::run_eval(a, e),
        #[cfg(feature = "embed")]
        Command::Finetune(f) => finetune::run_finetune(a, f),
        #[cfg(feature = "embed")]
        Command::Adapter(c) => adapter::run_adapter(a, c),
        #[cfg(feature = "embed")]
        Command::Reindex(r) => reindex::run_reindex(a, r),
        #[cfg(feature = "embed")]
        Command::Drift(d) => drift::run_drift(a, d),
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
            let (kind, field) = classify(&err);
            match field.and_then(flag_of) {
                Some(flag) if !err.to_string().contains(&flag) => {
                    eprintln!("error: {flag}: {err:#}")
                }
                _ => eprintln!("error: {err:#}"),
            }
            std::process::ExitCode::from(exit_code(kind))
        }
    }
}

/// The exit status of each kind of failure (documented in [`EXIT_CODES_HELP`] and the README).
fn exit_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Internal => 1,
        ErrorKind::InvalidInput => 2,
        ErrorKind::NotFound => 3,
        ErrorKind::AlreadyExists => 4,
        ErrorKind::Conflict => 5,
        ErrorKind::Unauthorized | ErrorKind::Forbidden => 6,
        ErrorKind::Overloaded => 7,
    }
}

/// The kind of an error and the request field it names: from the first service or engine error
/// in its chain; an error of the CLI's own (a flag it refused) is invalid input, and anything
/// else (I/O) internal.
fn classify(err: &anyhow::Error) -> (ErrorKind, Option<&str>) {
    for e in err.chain() {
        if let Some(s) = e.downcast_ref::<sextant_service::Error>() {
            return (s.kind(), s.field());
        }
        if let Some(s) = e.downcast_ref::<sextant_engine::EngineError>() {
            return (s.kind(), s.field());
        }
        if let Some(s) = e.downcast_ref::<sextant_core::FilterError>() {
            let _ = s;
            return (ErrorKind::InvalidInput, Some("filter"));
        }
    }
    if err
        .chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some())
    {
        return (ErrorKind::Internal, None);
    }
    // Refusals written by the CLI itself (`bail!`) are about the flags given.
    (ErrorKind::InvalidInput, None)
}

/// The command-line flag of a request field (`group_size` → `--group-size`), for fields that
/// are flags.
fn flag_of(field: &str) -> Option<String> {
    const FLAGS: &[&str] = &[
        "mode",
        "sources",
        "weights",
        "fusion",
        "rerank",
        "rerank_top",
        "rerank_blend",
        "source_k",
        "mmr",
        "group_size",
        "precision",
        "filter",
        "k",
        "ef",
        "space",
        "tenant",
        "tenant_key",
        "limit",
        "offset",
        "chunking",
        "chunk_tokens",
        "chunk_overlap",
        "parent_tokens",
        "redact",
        "redact_kinds",
        "redaction_key",
        "splade",
        "no_splade",
        "model",
        "batch",
        "start_id",
        "payloads",
        "llm",
        "encrypt",
        "config",
        "metrics",
        "compare_to",
        "new_key_file",
        "master_key_file",
        "out",
        "older_than",
    ];
    FLAGS
        .contains(&field)
        .then(|| format!("--{}", field.replace('_', "-")))
}

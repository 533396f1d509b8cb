//! `sextant adapter …`: train a query adapter against a document collection's frozen vectors,
//! attach, detach and show it (`sextant_service::adapter`).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sextant_service::adapter::{AdapterOptions, Progress};

use crate::db::{print_json, DbArgs, TenantArgs};

/// `adapter`.
#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Train a linear map of query embeddings on judged queries against the collection's
    /// stored chunk vectors (no re-embedding), with held-back queries for early stopping;
    /// writes the adapter directory and attaches it to the collection (unless --no-attach).
    Train(TrainArgs),
    /// Attach an adapter directory (what `adapter train` wrote) to a collection: its text
    /// searches map their query embedding through it from now on.
    Attach {
        /// Collection or alias.
        name: String,
        /// The adapter directory.
        adapter: PathBuf,
    },
    /// Remove a collection's adapter: text searches use the model's own query embedding.
    Detach {
        /// Collection or alias.
        name: String,
    },
    /// Show a collection's adapter (space, fingerprint, how it was trained).
    Show {
        /// Collection or alias.
        name: String,
    },
}

/// `adapter train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The document collection (or alias) the adapter is for.
    pub name: String,
    /// BEIR queries (`queries.jsonl`: `_id`, `text`).
    #[arg(long)]
    pub queries: PathBuf,
    /// BEIR qrels TSV (`query-id`, `corpus-id`, `score`): `corpus-id` is a document id of the
    /// collection.
    #[arg(long)]
    pub qrels: PathBuf,
    /// Where to write the adapter (a new or empty directory): `adapter.safetensors` and
    /// `adapter_card.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// Write the adapter without attaching it to the collection.
    #[arg(long)]
    pub no_attach: bool,
    /// Most passes over the training queries (early stopping may end sooner).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Queries per step (the pool of in-batch negatives).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(2..))]
    pub batch: u64,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-4)]
    pub lr: f64,
    /// Hard negatives per query: the collection's nearest chunks of documents not judged for
    /// it.
    #[arg(long, default_value_t = 16)]
    pub negatives: usize,
    /// λ of the λ/2 ‖W − I‖² term that keeps the map near the identity.
    #[arg(long, default_value_t = 1e-3)]
    pub regularisation: f64,
    /// Share of the judged queries held back to measure nDCG@10 after every epoch and stop
    /// early (0: none; the last epoch's map is kept).
    #[arg(long, default_value_t = 0.1)]
    pub validation: f64,
    /// Epochs without a better validation nDCG@10 before training stops.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    pub patience: u64,
    /// Seed of the held-back split and of the batch order.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

pub fn run_adapter(args: &DbArgs, cmd: AdapterCommand) -> Result<()> {
    let svc = crate::db::service(args)?;
    match cmd {
        AdapterCommand::Train(a) => {
            let c = svc.collection(&a.name)?;
            let mut opts = AdapterOptions::new(&a.name, &a.queries, &a.qrels, &a.out);
            opts.scope = a.tenant.scope(c.name(), c.schema())?;
            opts.attach = !a.no_attach;
            opts.epochs = a.epochs as usize;
            opts.batch = a.batch as usize;
            opts.lr = a.lr;
            opts.negatives = a.negatives;
            opts.regularisation = a.regularisation;
            opts.validation = a.validation;
            opts.patience = a.patience as usize;
            opts.seed = a.seed;
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                    .expect("template")
                    .progress_chars("=> "),
            );
            let quiet = args.json;
            if quiet {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let report = svc.train_adapter(&opts, |p| match p {
                Progress::Embedded(done, total) => {
                    bar.set_message("embedding queries");
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                }
                Progress::Mined(done, total) => {
                    bar.set_message("positives and hard negatives");
                    bar.set_length(total as u64);
                    bar.set_position(done as u64);
                }
                Progress::Epoch(e, loss, ndcg) => {
                    bar.set_message(format!(
                        "epoch {e}: loss {loss:.4}{}",
                        ndcg.map(|n| format!(", validation nDCG@10 {n:.4}"))
                            .unwrap_or_default()
                    ));
                    bar.set_length(opts.epochs as u64);
                    bar.set_position(e as u64);
                    if !quiet {
                        bar.suspend(|| {
                            eprintln!(
                                "epoch {e}: loss {loss:.4}{}",
                                ndcg.map(|n| format!(", validation nDCG@10 {n:.4}"))
                                    .unwrap_or_default()
                            )
                        })
                    }
                }
            })?;
            bar.finish_and_clear();
            if args.json {
                return print_json(&report);
            }
            println!(
                "trained a {0}×{0} query adapter for space {1:?} of {2:?} on {3} queries ({4} held back, {5} skipped: no relevant document in the collection) in {6:.1} s",
                report.dim,
                report.space,
                a.name,
                report.training,
                report.validation,
                report.skipped,
                report.train_seconds
            );
            if let (Some(b), Some(after)) = (report.ndcg_before, report.ndcg_after) {
                println!(
                    "validation nDCG@10: {b:.4} without the adapter, {after:.4} with it (epoch {} of {}{})",
                    report.best_epoch,
                    report.epochs.len(),
                    if report.stopped_early { ", stopped early" } else { "" }
                );
                if report.best_epoch == 0 {
                    println!("no epoch beat the model's own query embedding: the adapter is the identity");
                }
            }
            println!(
                "wrote {} (fingerprint {})",
                a.out.display(),
                report.fingerprint
            );
            if report.attached {
                println!(
                    "attached to {:?}: its text searches use it now (`sextant adapter detach {}` removes it; `--no-adapter` skips it per search)",
                    a.name, a.name
                );
            }
        }
        AdapterCommand::Attach { name, adapter } => {
            let info = svc.attach_adapter(&name, &adapter)?;
            if args.json {
                return print_json(&info);
            }
            println!(
                "attached the adapter in {} to space {:?} of {name:?} (fingerprint {})",
                adapter.display(),
                info.space,
                info.fingerprint
            );
        }
        AdapterCommand::Detach { name } => {
            let removed = svc.detach_adapter(&name)?;
            if args.json {
                return print_json(&json!({"collection": name, "removed": removed}));
            }
            if removed {
                println!("removed the query adapter of {name:?}");
            } else {
                println!("{name:?} has no query adapter");
            }
        }
        AdapterCommand::Show { name } => {
            let c = svc.collection(&name)?;
            let adapters = c.adapters();
            if args.json {
                return print_json(&adapters);
            }
            if adapters.is_empty() {
                println!("{name:?} has no query adapter");
            }
            for a in adapters {
                println!(
                    "space {:?}: {} {}×{}, fingerprint {}",
                    a.space, a.kind, a.dim, a.dim, a.fingerprint
                );
                println!("  {}", a.card);
            }
        }
    }
    Ok(())
}

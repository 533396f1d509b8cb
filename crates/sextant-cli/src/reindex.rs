//! `sextant reindex`: re-embed a document collection with a new model into a new collection,
//! after printing the estimate of time and space (`Service::reindex_plan`).

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_engine::documents::reindex::DEFAULT_REINDEX_BATCH;
use sextant_service::{ReindexOptions, ReindexPlan};

use crate::db::DbArgs;

/// `reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// The document collection (or alias) to re-embed; it is left as it is.
    pub name: String,
    /// The new embedding model directory (a sentence-transformers or BERT directory).
    #[arg(long)]
    pub model: String,
    /// The new collection: the source's settings, tenancy and encryption, the new model.
    #[arg(long)]
    pub into: String,
    /// Chunks embedded per durable batch.
    #[arg(long, default_value_t = DEFAULT_REINDEX_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: u64,
    /// Continue into an existing target (after an interruption, or to catch up with writes
    /// to the source): re-embed only chunks missing or changed there, delete those the source
    /// no longer has.
    #[arg(long)]
    pub resume: bool,
    /// Print the estimate and stop.
    #[arg(long)]
    pub dry_run: bool,
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn duration(s: f64) -> String {
    if s < 90.0 {
        format!("{s:.0} s")
    } else if s < 5400.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn print_plan(p: &ReindexPlan, into: &str) {
    let e = &p.estimate;
    println!(
        "reindex {:?} ({}, {}-d) into {into:?} ({}, {}-d)",
        p.source, p.source_model, e.old_dim, p.model, e.new_dim
    );
    println!(
        "  {} chunks, {:.1} MiB of text; embedding about {} (timed on a sample)",
        e.chunks,
        mib(e.text_bytes),
        duration(p.estimated_seconds)
    );
    println!(
        "  disk: about {:.1} MiB for the new collection (the source takes {:.1} MiB){}",
        mib(e.estimated_disk_bytes),
        mib(e.source_disk_bytes),
        p.free_disk_bytes
            .map(|f| format!("; {:.1} MiB free", mib(f)))
            .unwrap_or_default()
    );
}

/// Runs `reindex`.
pub fn run_reindex(db_args: &DbArgs, a: ReindexArgs) -> Result<()> {
    let svc = crate::db::service(db_args)?;
    let opts = ReindexOptions {
        model: a.model.clone(),
        into: a.into.clone(),
        batch: Some(a.batch as usize),
        resume: a.resume,
    };
    let t0 = std::time::Instant::now();
    let plan = svc.reindex_plan(&a.name, &opts)?;
    if a.dry_run {
        if db_args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print_plan(&plan, &a.into);
        }
        return Ok(());
    }
    if !db_args.json {
        print_plan(&plan, &a.into);
    }
    let bar = if db_args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(plan.estimate.chunks).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} chunks ({per_sec}, eta {eta})")
                .expect("valid template"),
        )
    };
    let report = svc.reindex_planned(plan.clone(), &opts, t0, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    if db_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    let s = &report.stats;
    println!(
        "re-embedded {} chunks into {:?} in {:.1} s ({:.0} chunks/s); {} unchanged, {} gone from the source, {} removed",
        s.embedded, a.into, report.seconds, report.chunks_per_s, s.unchanged, s.vanished, s.removed
    );
    println!(
        "next: compare with `sextant eval {} --compare {} --beir DIR` (or --queries/--qrels), then switch readers with `sextant alias set ALIAS {}`; {:?} stays for rollback",
        plan.source, a.into, a.into, plan.source
    );
    Ok(())
}

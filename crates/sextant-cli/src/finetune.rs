//! `sextant finetune`: fine-tune a bi-encoder on BEIR judgements (`sextant_service::finetune`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use sextant_embed::TrainOptions;
use sextant_service::finetune::{
    finetune, CrossLoss, FinetuneOptions, HardNegatives, StructurePairs, TrainingData,
    DEFAULT_CROSS_LOSS, DEFAULT_CROSS_LR, DEFAULT_CROSS_NEGATIVES, DEFAULT_VALIDATION_DOCS,
};

use crate::db::DbArgs;

/// The training loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Loss {
    /// Bi-encoder: multiple-negatives ranking (InfoNCE with in-batch negatives, scale 20,
    /// cosine).
    Mnrl,
    /// Cross-encoder: softmax cross-entropy over each pair's group (the relevant document and
    /// its negatives), so that it outscores the query's other candidates.
    Listwise,
    /// Cross-encoder: binary cross-entropy on every pair of the group (relevant 1, negatives
    /// and another pair's document 0), each on its own.
    Bce,
}

/// Precision of training's products.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TrainPrecision {
    F32,
    Bf16,
}

/// What of a collection's structure becomes queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Structure {
    Title,
    Section,
    Both,
}

/// Where hard negatives come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Negatives {
    /// In-batch negatives only.
    None,
    /// The best BM25 hit that is not judged relevant.
    Bm25,
    /// The starting model's best hit that is not judged relevant (embeds the whole corpus
    /// first).
    Model,
}

/// `finetune`.
#[derive(Debug, Args)]
pub struct FinetuneArgs {
    /// The model directory to start from (sentence-transformers or Hugging Face BERT layout).
    #[arg(long)]
    pub model: PathBuf,
    /// BEIR corpus (`corpus.jsonl`: `_id`, `title`, `text`).
    #[arg(
        long,
        required_unless_present = "collection",
        conflicts_with = "collection"
    )]
    pub corpus: Option<PathBuf>,
    /// BEIR queries (`queries.jsonl`: `_id`, `text`).
    #[arg(
        long,
        required_unless_present = "collection",
        conflicts_with = "collection"
    )]
    pub queries: Option<PathBuf>,
    /// BEIR qrels TSV (`query-id`, `corpus-id`, `score`): the training judgements.
    #[arg(
        long,
        required_unless_present = "collection",
        conflicts_with = "collection"
    )]
    pub qrels: Option<PathBuf>,
    /// Train on a document collection's own structure instead of judgements (see `--pairs`):
    /// its chunks are the corpus (in a multi-tenant collection, `--tenant`'s or
    /// `--all-tenants`).
    #[arg(long)]
    pub collection: Option<String>,
    /// With a multi-tenant --collection: train on this tenant's documents only (typed by the
    /// tenant key).
    #[arg(long, value_name = "TENANT", requires = "collection")]
    pub tenant: Option<String>,
    /// With a multi-tenant --collection: train on every tenant's documents (the
    /// administrator's path; the model carries their text).
    #[arg(long, requires = "collection", conflicts_with = "tenant")]
    pub all_tenants: bool,
    /// With --collection: which titles become queries. `title`: a document's title → its
    /// passages; `section`: a Markdown heading → the passages under it; a heading over more
    /// than 3 documents is left out, and a query trains on its first 2 passages [default:
    /// both].
    #[arg(long, value_enum)]
    pub pairs: Option<Structure>,
    /// Where to write the trained model (a new or empty directory), with `training_card.json`.
    #[arg(long)]
    pub out: PathBuf,
    /// The loss: mnrl for a bi-encoder; listwise or bce for a `--cross-encoder` [default: mnrl,
    /// or listwise with --cross-encoder].
    #[arg(long, value_enum)]
    pub loss: Option<Loss>,
    /// Where hard negatives come from: for a bi-encoder, one a pair besides the in-batch ones;
    /// for a cross-encoder, `--negatives` a pair drawn from the source's top 20.
    #[arg(long, value_enum, default_value_t = Negatives::Bm25)]
    pub hard_negatives: Negatives,
    /// Cross-encoder only: negatives a pair, drawn (seeded, without replacement) from the
    /// `--hard-negatives` source's top 20 less the judged documents, the candidates a reranker
    /// sees [default: 3].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub negatives: Option<u64>,
    /// Passes over the training pairs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: u64,
    /// Pairs per step (the in-batch negatives of each query); at least 2.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(2..))]
    pub batch: u64,
    /// Token limit of every text [default: the model's max_seq_length].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_seq: Option<u64>,
    /// Peak learning rate (AdamW; linear warm-up over the first 10% of steps, then linear
    /// decay to 0) [default: 2e-5, or 2e-4 with --cross-encoder, whose head starts untrained].
    #[arg(long)]
    pub lr: Option<f64>,
    /// Share of the judged queries held back to measure nDCG@10 before and after (0: none).
    #[arg(long, default_value_t = 0.1)]
    pub validation: f64,
    /// Seed of the held-back split and of the order of the pairs.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Matryoshka loss: the sum of the loss over the embeddings cut to each of these widths
    /// (e.g. `384,256,128`), so that a prefix of the vector is a good embedding too
    /// (`--dimensions` of ingestion, `dimensions` of the embeddings API).
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u64).range(1..))]
    pub matryoshka: Option<Vec<u64>>,
    /// Train a cross-encoder (a reranker for `--rerank DIR`) instead of a bi-encoder:
    /// `BertForSequenceClassification` from the model's encoder, trained with `--loss` on each
    /// pair and its `--negatives`; `--batch` counts pairs with their negatives; held-back
    /// queries are scored as BM25 before and BM25's top 20 reranked after.
    #[arg(long)]
    pub cross_encoder: bool,
    /// Bi-encoder only: the symmetric loss, the mean of MNRL from queries to documents and
    /// from documents back to the batch's queries.
    #[arg(long)]
    pub symmetric: bool,
    /// Score the held-back queries every N steps (and at the last one); the model written is
    /// the best-scoring one, not the last.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub eval_steps: Option<u64>,
    /// Early stopping: end the run after N validations in a row without a better nDCG@10
    /// (needs --eval-steps).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub patience: Option<u64>,
    /// Bi-encoder: rank the held-back queries over their judged documents and seeded others,
    /// this many in all (the whole corpus when smaller), so that validating does not embed a
    /// large corpus each time [default: 10000].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub validation_docs: Option<u64>,
    /// Write a checkpoint every N steps under OUT/checkpoints/ (the two newest are kept; all
    /// are removed when the run ends).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_steps: Option<u64>,
    /// Resume an interrupted run from one of its checkpoints (OUT/checkpoints/step-N), with
    /// the same data and settings (checked) and the same --out.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Precision of training's matrix products: `f32`, or `bf16` (mixed precision: the
    /// linear layers' products forward and backward on the AMX or AVX512-BF16 kernel, the
    /// weights and the optimiser in f32; refused on a CPU without them) [default: f32].
    #[arg(long, value_enum)]
    pub precision: Option<TrainPrecision>,
    /// Threads for training and embedding [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub threads: Option<u64>,
}

pub fn run_finetune(db_args: &DbArgs, a: FinetuneArgs) -> Result<()> {
    if let Some(t) = a.threads {
        // candle runs its matrix products on a thread pool of its own, sized once from this
        // variable (all cores when unset): without it `--threads 1` would still multiply on
        // every core. Set before any model is loaded; a value the user set wins.
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", t.to_string());
        }
    }
    if a.cross_encoder && a.matryoshka.is_some() {
        bail!("--matryoshka applies to bi-encoders; a cross-encoder outputs a score, not a vector");
    }
    if a.cross_encoder && a.hard_negatives == Negatives::None {
        bail!("--cross-encoder trains on negatives: use --hard-negatives bm25 or model");
    }
    let hard_negatives = match a.hard_negatives {
        Negatives::None => HardNegatives::None,
        Negatives::Bm25 => HardNegatives::Bm25,
        Negatives::Model => HardNegatives::Model,
    };
    let cross_loss = match (a.cross_encoder, a.loss) {
        (false, None | Some(Loss::Mnrl)) => DEFAULT_CROSS_LOSS,
        (false, Some(l)) => bail!(
            "--loss {}: that is a cross-encoder's loss (with --cross-encoder); a bi-encoder trains with mnrl",
            l.to_possible_value().expect("no skipped variant").get_name()
        ),
        (true, None) => DEFAULT_CROSS_LOSS,
        (true, Some(Loss::Listwise)) => CrossLoss::Listwise,
        (true, Some(Loss::Bce)) => CrossLoss::Bce,
        (true, Some(Loss::Mnrl)) => {
            bail!("--loss mnrl is a bi-encoder's loss: a --cross-encoder trains with listwise or bce")
        }
    };
    if a.cross_encoder && a.symmetric {
        bail!("--symmetric is a bi-encoder's loss: a --cross-encoder scores pairs, it has no documents-to-queries direction");
    }
    if a.cross_encoder && a.validation_docs.is_some() {
        bail!("--validation-docs applies to bi-encoders: a --cross-encoder is validated by reranking BM25's top 20 over the whole corpus");
    }
    if a.patience.is_some() && a.eval_steps.is_none() {
        bail!("--patience counts validations: give --eval-steps N too");
    }
    if a.eval_steps.is_some() && a.validation <= 0.0 {
        bail!("--eval-steps scores held-back queries: --validation must be above 0");
    }
    if !a.cross_encoder && a.negatives.is_some() {
        bail!("--negatives applies to --cross-encoder (a bi-encoder trains on one hard negative a pair)");
    }
    if a.pairs.is_some() && a.collection.is_none() {
        bail!(
            "--pairs picks what of a --collection's structure becomes queries: give --collection"
        );
    }
    // Checked here as well as by clap: clap drops `requires` when --corpus (which conflicts
    // with --collection) is given.
    for (flag, given) in [
        ("--tenant", a.tenant.is_some()),
        ("--all-tenants", a.all_tenants),
    ] {
        if given && a.collection.is_none() {
            bail!(
                "{flag} picks whose documents a --collection's pairs come from: give --collection"
            );
        }
    }
    let data = match (a.collection, a.corpus, a.queries, a.qrels) {
        (Some(collection), ..) => TrainingData::Collection {
            collection,
            pairs: match a.pairs.unwrap_or(Structure::Both) {
                Structure::Title => StructurePairs::Title,
                Structure::Section => StructurePairs::Section,
                Structure::Both => StructurePairs::Both,
            },
            tenant: a.tenant,
            all_tenants: a.all_tenants,
        },
        (None, Some(corpus), Some(queries), Some(qrels)) => TrainingData::Beir {
            corpus,
            queries,
            qrels,
        },
        _ => bail!("give --corpus, --queries and --qrels, or --collection"),
    };
    let from_collection = matches!(data, TrainingData::Collection { .. });
    let opts = FinetuneOptions {
        model: a.model,
        data,
        out: a.out,
        hard_negatives,
        max_seq: a.max_seq.map(|m| m as usize),
        validation: a.validation,
        threads: a.threads.map(|t| t as usize),
        cross_encoder: a.cross_encoder,
        cross_loss,
        cross_negatives: a.negatives.map_or(DEFAULT_CROSS_NEGATIVES, |n| n as usize),
        validation_docs: a
            .validation_docs
            .map_or(DEFAULT_VALIDATION_DOCS, |n| n as usize),
        eval_steps: a.eval_steps.map(|n| n as usize),
        patience: a.patience.map(|n| n as usize),
        checkpoint_steps: a.checkpoint_steps.map(|n| n as usize),
        resume: a.resume,
        mixed_precision: a.precision == Some(TrainPrecision::Bf16),
        train: TrainOptions {
            epochs: a.epochs as usize,
            batch: a.batch as usize,
            lr: a.lr.unwrap_or(if a.cross_encoder {
                DEFAULT_CROSS_LR
            } else {
                TrainOptions::default().lr
            }),
            seed: a.seed,
            matryoshka: a
                .matryoshka
                .unwrap_or_default()
                .into_iter()
                .map(|w| w as usize)
                .collect(),
            symmetric: a.symmetric,
            ..TrainOptions::default()
        },
    };
    let bar = if db_args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} steps ({per_sec}, eta {eta}) {msg}")
                .expect("valid template"),
        )
    };
    let on_step = |s: &sextant_embed::Step| {
        bar.set_length(s.total as u64);
        bar.set_position(s.step as u64);
        bar.set_message(format!(
            "epoch {} loss {:.4} lr {:.2e}",
            s.epoch, s.loss, s.lr
        ));
    };
    let report = if from_collection {
        crate::db::service(db_args)?.finetune(&opts, on_step)?
    } else {
        finetune(&opts, on_step)?
    };
    bar.finish_and_clear();
    if db_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "trained {} pairs ({} with a hard negative) from {} queries, {} steps in {:.1} s ({:.1} s CPU; {:.1} pairs/s)",
        report.pairs,
        report.hard_negatives,
        report.train_queries,
        report.steps,
        report.train_seconds,
        report.train_cpu_seconds,
        report.pairs_per_second
    );
    if let Some(step) = report.resumed_from {
        println!("resumed after step {step}");
    }
    println!(
        "loss: first step {:.4}, last step {:.4}, last epoch mean {:.4}",
        report.first_loss, report.last_loss, report.last_epoch_loss
    );
    if !report.validations.is_empty() {
        let list: Vec<String> = report
            .validations
            .iter()
            .map(|v| format!("{} {:.4}", v.step, v.ndcg))
            .collect();
        println!(
            "held-back nDCG@10 by step: {}; kept step {}{}",
            list.join(", "),
            report.best_step.map_or("-".into(), |s| s.to_string()),
            if report.stopped_early {
                " (stopped early)"
            } else {
                ""
            }
        );
    }
    match (report.ndcg_before, report.ndcg_after) {
        (Some(b), Some(a)) => println!(
            "nDCG@10 on {} held-back queries over {} documents ({}): {b:.4} before, {a:.4} after ({:+.4})",
            report.validation_queries,
            report.validation_docs,
            report.validation_metric,
            a - b
        ),
        _ => println!("no held-back queries: no nDCG measured (--validation 0)"),
    }
    println!(
        "model written to {} (training_card.json beside it)",
        opts.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};
    use sextant_embed::TrainOptions;
    use sextant_service::finetune::{
        CrossLoss, CROSS_NEGATIVE_DEPTH, DEFAULT_CROSS_LOSS, DEFAULT_CROSS_LR,
        DEFAULT_CROSS_NEGATIVES, DEFAULT_VALIDATION_DOCS, MAX_HEADING_DOCUMENTS, PAIRS_PER_QUERY,
    };

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        finetune: super::FinetuneArgs,
    }

    /// The help states the service's defaults: it cannot name the constants itself.
    #[test]
    fn help_states_the_cross_encoder_defaults() {
        let help = Cli::command().render_long_help().to_string();
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            help.contains(&format!("[default: {DEFAULT_CROSS_NEGATIVES}]")),
            "{help}"
        );
        assert!(
            help.contains(&format!("source's top {CROSS_NEGATIVE_DEPTH}")),
            "{help}"
        );
        assert_eq!(DEFAULT_CROSS_LOSS, CrossLoss::Listwise);
        assert!(help.contains("or listwise with --cross-encoder"), "{help}");
        assert!(
            help.contains(&format!("[default: {DEFAULT_VALIDATION_DOCS}]")),
            "{help}"
        );
        let structure = format!(
            "more than {MAX_HEADING_DOCUMENTS} documents is left out, and a query trains on its first {PAIRS_PER_QUERY} passages"
        );
        assert!(help.contains(&structure), "{structure} not in {help}");
        let lrs = format!(
            "[default: {:e}, or {DEFAULT_CROSS_LR:e} with --cross-encoder",
            TrainOptions::default().lr
        );
        assert!(help.contains(&lrs), "{lrs} not in {help}");
    }
}

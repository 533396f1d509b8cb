//! `sextant bench langid`: language detection accuracy on labelled samples
//! (`scripts/fetch-lang-data.sh` writes `data/text/langid/samples.jsonl`: sentences and
//! paragraphs of translated Debian manual pages, labelled by ISO 639-1 code). Per language and
//! per kind: accuracy of the top guess, the share of samples detection calls reliable and the
//! accuracy on those, the most frequent confusions; and the time per text (wall and CPU).

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;
use serde_json::Value;
use sextant_eval::process_cpu_seconds;

#[derive(Debug, Args)]
pub struct LangidBenchArgs {
    /// Labelled samples, JSONL with `lang` (ISO 639-1), `kind` and `text`.
    #[arg(long, default_value = "data/text/langid/samples.jsonl")]
    samples: PathBuf,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// Counts of one language or kind.
#[derive(Debug, Default, Clone, Serialize)]
struct Tally {
    samples: usize,
    correct: usize,
    reliable: usize,
    reliable_correct: usize,
    /// Wrong guesses by the code guessed (`none`: no guess).
    confusions: BTreeMap<String, usize>,
}

impl Tally {
    fn add(&mut self, truth: &str, guess: Option<(&str, bool)>) {
        self.samples += 1;
        match guess {
            Some((g, reliable)) => {
                let ok = g == truth;
                self.correct += usize::from(ok);
                if reliable {
                    self.reliable += 1;
                    self.reliable_correct += usize::from(ok);
                }
                if !ok {
                    *self.confusions.entry(g.to_string()).or_default() += 1;
                }
            }
            None => *self.confusions.entry("none".into()).or_default() += 1,
        }
    }

    fn ratio(a: usize, b: usize) -> f64 {
        if b == 0 {
            0.0
        } else {
            a as f64 / b as f64
        }
    }

    fn accuracy(&self) -> f64 {
        Tally::ratio(self.correct, self.samples)
    }

    fn reliable_share(&self) -> f64 {
        Tally::ratio(self.reliable, self.samples)
    }

    fn reliable_accuracy(&self) -> f64 {
        Tally::ratio(self.reliable_correct, self.reliable)
    }

    fn top_confusions(&self) -> String {
        let mut c: Vec<(&String, &usize)> = self.confusions.iter().collect();
        c.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        c.iter()
            .take(3)
            .map(|(g, n)| format!("{g} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Runs `bench langid`.
pub fn bench_langid(args: LangidBenchArgs) -> Result<()> {
    let f = std::fs::File::open(&args.samples).with_context(|| {
        format!(
            "cannot open {} (scripts/fetch-lang-data.sh writes it)",
            args.samples.display()
        )
    })?;
    let mut samples: Vec<(String, String, String)> = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}", args.samples.display(), i + 1))?;
        let field = |k: &str| -> Result<String> {
            v[k].as_str().map(str::to_string).with_context(|| {
                format!("{} line {}: no string {k:?}", args.samples.display(), i + 1)
            })
        };
        samples.push((field("lang")?, field("kind")?, field("text")?));
    }
    anyhow::ensure!(
        !samples.is_empty(),
        "{} holds no samples",
        args.samples.display()
    );
    let known: Vec<&str> = sextant_text::language::detectable().collect();
    let cpu0 = process_cpu_seconds();
    let t0 = Instant::now();
    let guesses: Vec<Option<(&'static str, bool)>> = samples
        .iter()
        .map(|(_, _, text)| sextant_text::language::detect(text).map(|d| (d.code, d.reliable)))
        .collect();
    let wall = t0.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu0;
    let mut by_lang: BTreeMap<(String, String), Tally> = BTreeMap::new();
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut all = Tally::default();
    for ((lang, kind, _), g) in samples.iter().zip(&guesses) {
        by_lang
            .entry((lang.clone(), kind.clone()))
            .or_default()
            .add(lang, *g);
        by_kind.entry(kind.clone()).or_default().add(lang, *g);
        all.add(lang, *g);
    }
    let unknown: Vec<&str> = by_lang
        .keys()
        .map(|(l, _)| l.as_str())
        .filter(|l| !known.contains(l))
        .collect();
    let mut md = String::new();
    md.push_str(&format!(
        "Language detection (whatlang, {} languages, reliable = confidence ≥ {}) on {} samples of {}\n\n",
        known.len(),
        sextant_text::language::RELIABLE_CONFIDENCE,
        samples.len(),
        args.samples.display()
    ));
    md.push_str(&format!(
        "All: accuracy {:.3}, reliable {:.3} of samples with accuracy {:.3}; {:.3} ms wall, {:.3} ms CPU per text\n\n",
        all.accuracy(),
        all.reliable_share(),
        all.reliable_accuracy(),
        wall * 1e3 / samples.len() as f64,
        cpu * 1e3 / samples.len() as f64
    ));
    md.push_str("| kind | samples | accuracy | reliable share | accuracy when reliable |\n|---|---:|---:|---:|---:|\n");
    for (kind, t) in &by_kind {
        md.push_str(&format!(
            "| {kind} | {} | {:.3} | {:.3} | {:.3} |\n",
            t.samples,
            t.accuracy(),
            t.reliable_share(),
            t.reliable_accuracy()
        ));
    }
    md.push_str("\n| language | kind | samples | accuracy | reliable share | accuracy when reliable | top confusions |\n|---|---|---:|---:|---:|---:|---|\n");
    for ((lang, kind), t) in &by_lang {
        md.push_str(&format!(
            "| {lang} | {kind} | {} | {:.3} | {:.3} | {:.3} | {} |\n",
            t.samples,
            t.accuracy(),
            t.reliable_share(),
            t.reliable_accuracy(),
            t.top_confusions()
        ));
    }
    if !unknown.is_empty() {
        md.push_str(&format!(
            "\nNot detectable by whatlang (always wrong here): {}\n",
            unknown.join(", ")
        ));
    }
    print!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md).with_context(|| format!("cannot write {}", p.display()))?;
    }
    if let Some(p) = &args.json {
        let report = serde_json::json!({
            "samples": args.samples.display().to_string(),
            "detector": "whatlang 0.18",
            "reliable_confidence": sextant_text::language::RELIABLE_CONFIDENCE,
            "wall_ms_per_text": wall * 1e3 / samples.len() as f64,
            "cpu_ms_per_text": cpu * 1e3 / samples.len() as f64,
            "all": all,
            "accuracy": all.accuracy(),
            "by_kind": by_kind,
            "by_language": by_lang
                .iter()
                .map(|((l, k), t)| serde_json::json!({"lang": l, "kind": k, "accuracy": t.accuracy(), "tally": t}))
                .collect::<Vec<_>>(),
        });
        std::fs::write(p, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}

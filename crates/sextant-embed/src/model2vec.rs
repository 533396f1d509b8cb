//! Model2Vec static models: one learned vector per token, averaged. No transformer runs: a
//! text costs its tokenization and one vector addition per token.
//!
//! A model is a directory with `config.json` (`normalize`, `max_length`, `embedding_dtype`, …),
//! `model.safetensors` (tensor `embeddings` `[rows, dim]` in f32, f16, bf16 or int8; optional
//! `mapping` `[vocab]` from token id to row, for vocabulary-quantized models, and `weights`
//! `[vocab]`, a per-token scale) and `tokenizer.json`. The algorithm is model2vec 0.10.0's
//! `StaticModel.encode`, step for step (checked against it in the `static_model` integration
//! tests):
//!
//! 1. `max_length` is `config.json`'s (512 when absent, no limit when `null`). The text is cut
//!    to its first `max_length × median_token_length` characters (Unicode scalar values, as
//!    Python slices), `median_token_length` being the median character length of every token
//!    string of the vocabulary, added tokens included, truncated to an integer.
//! 2. The text is tokenized without special tokens (no `[CLS]`/`<s>`; padding and the
//!    tokenizer file's own truncation are ignored), and cut to its first `max_length` ids.
//! 3. Every id equal to the unknown-token id is dropped: the id of `model.unk_token` for
//!    WordPiece/BPE/WordLevel tokenizers, `model.unk_id` *as stored* for Unigram ones.
//! 4. No id left: the zero vector. Otherwise the mean, in f32, of `embeddings[mapping[id]] ×
//!    weights[id]` (without `mapping`, row `id`; without `weights`, no scale; int8 values are
//!    used as integers: normalisation removes the scale).
//! 5. With `normalize`, `v / (‖v‖ + 1e-32)`.
//!
//! **The unknown-id quirk.** model2vec drops `model.unk_id` even when it does not point at an
//! unknown token. In `tokenlearn-static-model` 0.1.1 (the real model of the parity tests)
//! `unk_id` is 3, the token `"."`, while `<unk>` is id 1: every `"."` piece disappears from
//! every text, and so do the characters the Unigram model cannot cover (it emits `unk_id` for
//! them). We reproduce model2vec, since its vectors are what such a model was evaluated with;
//! the wheel's own Rust encoder drops nothing and differs from model2vec by up to 0.085 on texts
//! with a full stop.
//!
//! The fingerprint's hash covers the weights file, the tokenizer file (for a static model the
//! vocabulary is half the model) and `max_length` (a different cut is a different vector for
//! long texts), so a static model never matches a transformer's or another static model's
//! space.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::config::{read_json, ModelDir, CONFIG_FILE, SANE_MAX_LENGTH, TOKENIZER_FILE};
use crate::embedder::{build_pool, Embedder, EmbedderOptions, Embeddings, InputKind};
use crate::fingerprint::ModelFingerprint;
use crate::pooling::Pooling;
use crate::profile::{timed, EmbedProfile};
use crate::prompts::Prompts;
use crate::raw_tensors::RawTensors;
use crate::tokenize::{Encoded, TextTokenizer};
use crate::weights::hex;
use crate::{EmbedError, WEIGHTS_FILE};

/// The tensor holding the token vectors.
pub(crate) const EMBEDDINGS_TENSOR: &str = "embeddings";
/// The optional token id → row table of vocabulary-quantized models.
const MAPPING_TENSOR: &str = "mapping";
/// The optional per-token scale.
const WEIGHTS_TENSOR: &str = "weights";
/// `max_length` when `config.json` has none (model2vec's default).
pub const STATIC_DEFAULT_MAX_LENGTH: usize = 512;
/// Added to the norm before dividing (model2vec's guard; keeps the zero vector at zero).
const NORM_EPS: f32 = 1e-32;
/// The algorithm's version, folded into the fingerprint.
const ALGORITHM: &str = "model2vec-0.10.0";
/// The modules a Model2Vec directory's `modules.json` may list.
const STATIC_MODULES_TEXT: &str = "a Model2Vec StaticEmbedding at the model's root \
    (model2vec's own layout), then optionally Normalize";
/// Texts per parallel task (tokenizing one text takes microseconds).
const TEXTS_PER_TASK: usize = 64;

#[derive(Deserialize)]
struct StaticConfigFile {
    #[serde(default)]
    normalize: bool,
    #[serde(default = "default_max_length")]
    max_length: Option<usize>,
}

fn default_max_length() -> Option<usize> {
    Some(STATIC_DEFAULT_MAX_LENGTH)
}

/// The part of `tokenizer.json` that says which id is "unknown".
#[derive(Deserialize)]
struct TokenizerFile {
    model: TokenizerModel,
}

#[derive(Deserialize)]
struct TokenizerModel {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    unk_id: Option<u32>,
    #[serde(default)]
    unk_token: Option<String>,
}

/// The token vectors and how ids reach them.
#[derive(Debug)]
struct Table {
    /// Row-major `[rows, width]`.
    values: Vec<f32>,
    width: usize,
    /// Token id → row (`None`: row = id).
    mapping: Option<Vec<u32>>,
    /// Token id → scale.
    scale: Option<Vec<f32>>,
}

impl Table {
    /// Reads and checks the tables against a vocabulary of `vocab` ids.
    fn load(path: &Path, vocab: usize) -> Result<(Self, String), EmbedError> {
        let t = RawTensors::load(path)?;
        let shape = t
            .shape(EMBEDDINGS_TENSOR)
            .ok_or_else(|| EmbedError::MissingTensor {
                name: EMBEDDINGS_TENSOR.into(),
                path: path.to_path_buf(),
                tried: vec![EMBEDDINGS_TENSOR.into()],
            })?
            .to_vec();
        let (rows, width) = match shape.as_slice() {
            [r, w] if *w > 0 => (*r, *w),
            _ => {
                return Err(EmbedError::bad_config(
                    path,
                    format!("tensor \"embeddings\" has shape {shape:?}, not [rows, dim > 0]"),
                ))
            }
        };
        let per_token = |name: &str| -> Result<(), EmbedError> {
            match t.shape(name) {
                Some(s) if s != [vocab] => Err(EmbedError::ShapeMismatch {
                    name: name.into(),
                    expected: vec![vocab],
                    got: s.to_vec(),
                }),
                _ => Ok(()),
            }
        };
        per_token(MAPPING_TENSOR)?;
        per_token(WEIGHTS_TENSOR)?;
        let mapping = match t.shape(MAPPING_TENSOR) {
            Some(_) => {
                let m = t.indices(MAPPING_TENSOR)?;
                if let Some(bad) = m.iter().find(|&&r| r as usize >= rows) {
                    return Err(EmbedError::bad_config(
                        path,
                        format!("\"mapping\" points at row {bad} of an embedding table of {rows}"),
                    ));
                }
                Some(m)
            }
            // Without a mapping, one row per token of the tokenizer.
            None if rows != vocab => {
                return Err(EmbedError::ShapeMismatch {
                    name: EMBEDDINGS_TENSOR.into(),
                    expected: vec![vocab, width],
                    got: shape,
                })
            }
            None => None,
        };
        let scale = match t.shape(WEIGHTS_TENSOR) {
            Some(_) => Some(t.f32s(WEIGHTS_TENSOR)?),
            None => None,
        };
        let table = Table {
            values: t.f32s(EMBEDDINGS_TENSOR)?,
            width,
            mapping,
            scale,
        };
        Ok((table, t.sha256().to_owned()))
    }

    /// The mean of the (scaled) rows of `ids` in f32, summed in order as numpy does; the zero
    /// vector for no ids. Every id is below the vocabulary size (checked by the caller).
    fn mean(&self, ids: &[u32]) -> Vec<f32> {
        let w = self.width;
        let mut sum = vec![0f32; w];
        for &id in ids {
            let i = id as usize;
            let r = self.mapping.as_ref().map_or(i, |m| m[i] as usize);
            let row = &self.values[r * w..(r + 1) * w];
            match &self.scale {
                Some(s) => sum.iter_mut().zip(row).for_each(|(a, b)| *a += b * s[i]),
                None => sum.iter_mut().zip(row).for_each(|(a, b)| *a += b),
            }
        }
        if !ids.is_empty() {
            let n = ids.len() as f32;
            sum.iter_mut().for_each(|a| *a /= n);
        }
        sum
    }
}

/// A Model2Vec static embedding model (CPU, no transformer).
#[derive(Debug)]
pub struct StaticEmbedder {
    tokenizer: TextTokenizer,
    table: Table,
    vocab: usize,
    unk_id: Option<u32>,
    max_length: Option<usize>,
    median_token_length: usize,
    normalize: bool,
    dim: Option<usize>,
    out_dim: usize,
    prompts: Prompts,
    pool: Option<rayon::ThreadPool>,
    fingerprint: ModelFingerprint,
}

impl StaticEmbedder {
    /// Loads a Model2Vec directory (or a Hugging Face id in the local cache). Of the options,
    /// `threads`, `normalize`, `dim`, `max_seq_length` (replaces `max_length`) and the prefixes
    /// apply; `precision` and `batch_size` mean nothing without a transformer and are ignored;
    /// a pooling other than mean is refused.
    pub fn load(spec: &str, opts: EmbedderOptions) -> Result<Self, EmbedError> {
        opts.check()?;
        Self::load_dir(ModelDir::resolve(spec)?, opts)
    }

    /// [`StaticEmbedder::load`] on a resolved directory.
    pub(crate) fn load_dir(dir: ModelDir, opts: EmbedderOptions) -> Result<Self, EmbedError> {
        opts.check()?;
        if let Some(p) = opts.pooling.filter(|&p| p != Pooling::Mean) {
            return Err(EmbedError::InvalidArgument(format!(
                "a static model averages its token vectors: pooling {p} does not apply"
            )));
        }
        let pool = build_pool(opts.threads)?;
        check_modules(&dir)?;
        let cfg: StaticConfigFile = read_json(&dir.require(CONFIG_FILE)?)?;
        let max_length = opts.max_seq_length.or(cfg.max_length);
        if max_length == Some(0) {
            return Err(EmbedError::bad_config(
                dir.root().join(CONFIG_FILE),
                "max_length 0 leaves no token",
            ));
        }
        let tok_path = dir.require(TOKENIZER_FILE)?;
        let tokenizer = TextTokenizer::load(&tok_path, max_length.unwrap_or(SANE_MAX_LENGTH))?;
        let tokenizer_bytes = std::fs::read(&tok_path).map_err(|e| EmbedError::io(&tok_path, e))?;
        let unk_id = unknown_id(&tok_path, &tokenizer_bytes, &tokenizer)?;
        let vocabulary = tokenizer.vocabulary();
        let median_token_length = median_token_length(&vocabulary).ok_or_else(|| {
            EmbedError::bad_config(&tok_path, "the tokenizer has an empty vocabulary")
        })?;
        let vocab = vocabulary.values().max().map_or(0, |&m| m as usize + 1);
        let (table, weights_sha) = Table::load(&dir.require(WEIGHTS_FILE)?, vocab)?;
        let width = table.width;
        let out_dim = opts.dim.map_or(width, |d| d.min(width));
        let normalize = opts.normalize.unwrap_or(cfg.normalize);
        let prompts = Prompts::resolve(dir.root(), opts.query_prefix, opts.passage_prefix)?;
        let fingerprint = ModelFingerprint {
            model_id: dir.model_id(),
            weights_sha256: static_sha256(
                &weights_sha,
                &hex(&Sha256::digest(&tokenizer_bytes)),
                max_length,
            ),
            dim: out_dim,
            pooling: Some(Pooling::Mean),
            normalize,
            query_prefix: prompts.query.clone(),
            passage_prefix: prompts.passage.clone(),
            plain_prefix: prompts.plain.clone(),
        };
        Ok(StaticEmbedder {
            tokenizer,
            table,
            vocab,
            unk_id,
            max_length,
            median_token_length,
            normalize,
            dim: opts.dim,
            out_dim,
            prompts,
            pool,
            fingerprint,
        })
    }

    /// The tokenizer (token spans for chunking; [`StaticEmbedder::encode`] for the ids).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The most tokens of a text that count (`max_length`; a large sentinel when unlimited).
    pub fn max_seq_length(&self) -> usize {
        self.max_length.unwrap_or(SANE_MAX_LENGTH)
    }

    /// `max_length`: tokens kept per text (`None`: no limit).
    pub fn max_length(&self) -> Option<usize> {
        self.max_length
    }

    /// The median character length of the vocabulary's tokens (the character cut is
    /// `max_length` times this).
    pub fn median_token_length(&self) -> usize {
        self.median_token_length
    }

    /// The id dropped from every text as unknown (see the module docs for its quirk).
    pub fn unk_id(&self) -> Option<u32> {
        self.unk_id
    }

    /// Whether outputs are normalised.
    pub fn normalize(&self) -> bool {
        self.normalize
    }

    /// The text actually tokenized for `text` of `kind` (prefix applied).
    pub fn prefixed(&self, text: &str, kind: InputKind) -> String {
        self.prompts.apply(text, kind)
    }

    /// The ids averaged for `text` (no prefix applied): steps 1–3 of the module docs.
    /// `truncated` says whether either cut removed something.
    pub fn encode(&self, text: &str) -> Result<Encoded, EmbedError> {
        let (text, cut_chars) = match self.max_length {
            Some(m) => cut_chars(text, m.saturating_mul(self.median_token_length)),
            None => (text, false),
        };
        let mut ids = self.tokenizer.encode_plain(text)?;
        let cut_tokens = self.max_length.is_some_and(|m| ids.len() > m);
        if let Some(m) = self.max_length {
            ids.truncate(m);
        }
        if let Some(unk) = self.unk_id {
            ids.retain(|&i| i != unk);
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.vocab) {
            return Err(EmbedError::InvalidArgument(format!(
                "the tokenizer produced id {bad}, outside the model's {} tokens",
                self.vocab
            )));
        }
        Ok(Encoded {
            type_ids: vec![0; ids.len()],
            ids,
            truncated: cut_chars || cut_tokens,
        })
    }

    /// One text's vector, whether it was cut, and how many token vectors it averages.
    fn embed_one(&self, text: &str) -> Result<(Vec<f32>, bool, usize), EmbedError> {
        let e = self.encode(text)?;
        let mut v = self.table.mean(&e.ids);
        if let Some(d) = self.dim {
            v.truncate(d);
        }
        if self.normalize {
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm + NORM_EPS);
        }
        Ok((v, e.truncated, e.ids.len()))
    }

    /// The vectors of `texts` and the number of token vectors averaged.
    fn embed_impl(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<(Embeddings, usize), EmbedError> {
        use rayon::prelude::*;
        let rows = texts
            .par_iter()
            .with_min_len(TEXTS_PER_TASK)
            .map(|t| self.embed_one(&self.prompts.apply(t, kind)))
            .collect::<Result<Vec<_>, _>>()?;
        let truncated = rows.iter().filter(|(_, cut, _)| *cut).count();
        let tokens = rows.iter().map(|(_, _, n)| n).sum();
        let mut data = Vec::with_capacity(texts.len() * self.out_dim);
        for (v, _, _) in rows {
            data.extend_from_slice(&v);
        }
        Ok((Embeddings::new(self.out_dim, data, truncated), tokens))
    }

    fn run(&self, texts: &[&str], kind: InputKind) -> Result<(Embeddings, usize), EmbedError> {
        match &self.pool {
            Some(p) => p.install(|| self.embed_impl(texts, kind)),
            None => self.embed_impl(texts, kind),
        }
    }

    /// [`Embedder::embed`], timing the whole job as tokenization (there is no forward pass:
    /// the averaging is part of it) and counting texts and averaged tokens into `prof`.
    pub fn embed_profiled(
        &self,
        texts: &[&str],
        kind: InputKind,
        prof: &mut EmbedProfile,
    ) -> Result<Embeddings, EmbedError> {
        let (out, tokens) = timed(&mut prof.tokenize_s, || self.run(texts, kind))?;
        prof.sequences += texts.len();
        prof.tokens += tokens;
        prof.padded_tokens += tokens;
        Ok(out)
    }
}

impl Embedder for StaticEmbedder {
    fn dim(&self) -> usize {
        self.out_dim
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Embeddings, EmbedError> {
        Ok(self.run(texts, kind)?.0)
    }
}

/// `modules.json`, when present, must be model2vec's own: `StaticEmbedding` at the root, then
/// at most a `Normalize` (the normalisation itself is `config.json`'s `normalize`, as in
/// model2vec).
fn check_modules(dir: &ModelDir) -> Result<(), EmbedError> {
    let Some(modules) = crate::modules::module_types(dir.root())? else {
        return Ok(());
    };
    let path = dir.root().join(crate::modules::MODULES_FILE);
    let refuse = |module: String| EmbedError::UnsupportedModule {
        path: path.clone(),
        module,
        supported: STATIC_MODULES_TEXT,
    };
    for (i, (sub, kind)) in modules.iter().enumerate() {
        let ok = match i {
            0 if crate::modules::is_static_embedding(kind) => {
                if !matches!(sub.as_str(), "" | ".") {
                    return Err(refuse(format!(
                        "{kind} in the subdirectory {sub:?} (sentence-transformers' own \
                         StaticEmbedding format)"
                    )));
                }
                true
            }
            1 => crate::modules::is_normalize(kind),
            _ => false,
        };
        if !ok {
            return Err(refuse(format!("{kind} at position {i}")));
        }
    }
    Ok(())
}

/// The id model2vec drops as unknown: `model.unk_id` as stored for Unigram tokenizers, else
/// the id of `model.unk_token`.
fn unknown_id(
    path: &Path,
    bytes: &[u8],
    tokenizer: &TextTokenizer,
) -> Result<Option<u32>, EmbedError> {
    let f: TokenizerFile = serde_json::from_slice(bytes).map_err(|source| EmbedError::Json {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(match f.model.kind.as_deref() {
        Some("Unigram") => f.model.unk_id,
        _ => f
            .model
            .unk_token
            .as_deref()
            .and_then(|t| tokenizer.token_id(t)),
    })
}

/// `int(numpy.median(lengths))` of the vocabulary's token strings, in characters.
fn median_token_length(vocab: &std::collections::HashMap<String, u32>) -> Option<usize> {
    let mut lens: Vec<usize> = vocab.keys().map(|t| t.chars().count()).collect();
    if lens.is_empty() {
        return None;
    }
    lens.sort_unstable();
    let n = lens.len();
    // An even count averages the two middle lengths; int() truncates the .5.
    Some(if n % 2 == 1 {
        lens[n / 2]
    } else {
        (lens[n / 2 - 1] + lens[n / 2]) / 2
    })
}

/// `text` cut to its first `n` characters, and whether anything was cut.
fn cut_chars(text: &str, n: usize) -> (&str, bool) {
    match text.char_indices().nth(n) {
        Some((at, _)) => (&text[..at], true),
        None => (text, false),
    }
}

/// The fingerprint hash of a static model.
fn static_sha256(weights: &str, tokenizer: &str, max_length: Option<usize>) -> String {
    let max_length = max_length.map_or_else(|| "none".to_owned(), |m| m.to_string());
    let mut h = Sha256::new();
    for part in [ALGORITHM, weights, tokenizer, &max_length] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn median_follows_numpy_and_int() {
        let v = |toks: &[&str]| -> HashMap<String, u32> {
            toks.iter()
                .enumerate()
                .map(|(i, t)| ((*t).to_owned(), i as u32))
                .collect()
        };
        assert_eq!(median_token_length(&v(&["a", "bbb", "cc"])), Some(2));
        // (1 + 2) / 2 = 1.5 → 1; characters, not bytes.
        assert_eq!(median_token_length(&v(&["a", "▁b", "cc", "d"])), Some(1));
        assert_eq!(
            median_token_length(&v(&["é", "▁▁▁", "xyzw", "##ab"])),
            Some(3)
        );
        assert_eq!(median_token_length(&HashMap::new()), None);
    }

    #[test]
    fn character_cut_counts_scalar_values() {
        assert_eq!(cut_chars("héllo", 2), ("hé", true));
        assert_eq!(cut_chars("héllo", 5), ("héllo", false));
        assert_eq!(cut_chars("", 0), ("", false));
        assert_eq!(cut_chars("🚀a", 1), ("🚀", true));
    }

    #[test]
    fn mean_uses_mapping_and_scale_of_the_original_id() {
        let t = Table {
            values: vec![1., 2., 10., 20.],
            width: 2,
            mapping: Some(vec![1, 0, 1]),
            scale: Some(vec![1., 2., 0.5]),
        };
        // id 0 → row 1 × 1, id 2 → row 1 × 0.5.
        assert_eq!(t.mean(&[0, 2]), vec![7.5, 15.]);
        assert_eq!(t.mean(&[1]), vec![2., 4.]);
        assert_eq!(t.mean(&[]), vec![0., 0.]);
    }
}

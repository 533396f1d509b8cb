//! Reading a model directory in the Hugging Face layout.
//!
//! A model is a directory with `config.json` (the transformer), `tokenizer.json` and
//! `model.safetensors`, plus, for sentence-transformers models, `modules.json`,
//! `1_Pooling/config.json` and `sentence_bert_config.json`. Those last files decide pooling,
//! normalisation and the maximum sequence length; the tokenizer's own truncation and padding
//! settings are ignored on purpose (all-MiniLM-L6-v2 ships truncation 128 and fixed padding 128
//! in `tokenizer.json`, while the model is meant to read 256 tokens).
//!
//! Only what is implemented loads: `config.json` must describe a BERT, RoBERTa or XLM-RoBERTa
//! encoder ([`SUPPORTED_MODEL_TYPES`], [`SUPPORTED_ARCHITECTURES`]; the families differ only in
//! their embeddings, see [`EncoderFamily`]), and `modules.json` may list only `Transformer`,
//! `Pooling`, `Dense` and `Normalize`, in the order sentence-transformers runs them. Anything
//! else is refused by name instead of loading into the BERT forward and embedding garbage in
//! silence. A Model2Vec static model (no transformer at all) is recognised by [`ModelDir::kind`]
//! and loaded by [`crate::StaticEmbedder`]; the transformer loaders refuse it by name.
//!
//! A model can also be named by a Hugging Face id (`org/name`): it is then looked up in the
//! standard Hugging Face cache. This build never downloads; a missing model is an error that
//! points at `scripts/setup-models.sh`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::hub::HubOptions;
use crate::pooling::Pooling;
use crate::EmbedError;

/// File name of the transformer configuration.
pub const CONFIG_FILE: &str = "config.json";
/// File name of the tokenizer.
pub const TOKENIZER_FILE: &str = "tokenizer.json";
/// File name of the weights.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// `model_type` values of `config.json` whose checkpoints the BERT forward runs.
pub const SUPPORTED_MODEL_TYPES: &[&str] = &["bert", "roberta", "xlm-roberta"];
/// `architectures` of `config.json` that this crate loads: the bare encoders and the heads of
/// the cross-encoder (`*ForSequenceClassification`) and SPLADE (`BertForMaskedLM`);
/// `BertForPreTraining` checkpoints hold the same encoder and masked-LM head.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[
    "BertModel",
    "BertForMaskedLM",
    "BertForPreTraining",
    "BertForSequenceClassification",
    "RobertaModel",
    "RobertaForSequenceClassification",
    "XLMRobertaModel",
    "XLMRobertaForSequenceClassification",
];
pub(crate) const ARCHITECTURES_TEXT: &str = "BERT-family encoders (model_type \"bert\", \
    \"roberta\", \"xlm-roberta\"; architectures BertModel, BertForMaskedLM, BertForPreTraining, \
    BertForSequenceClassification, RobertaModel, RobertaForSequenceClassification, \
    XLMRobertaModel, XLMRobertaForSequenceClassification) and Model2Vec static models \
    (model2vec's config.json + model.safetensors \"embeddings\" + tokenizer.json)";
/// `model_type` of a Model2Vec checkpoint's `config.json` (when it has one at all).
pub const MODEL2VEC_MODEL_TYPE: &str = "model2vec";

/// The encoder families the forward pass runs. They share every layer; only the embeddings
/// differ, so one forward pass serves all of them (see `bert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EncoderFamily {
    /// BERT: position ids `0..n`; token types as the tokenizer gives them.
    Bert,
    /// RoBERTa and XLM-RoBERTa: position ids count the non-padding tokens from
    /// `pad_token_id + 1` (transformers' `create_position_ids_from_input_ids`: a padding id
    /// gets position `pad_token_id` and is not counted, even inside the text); every token
    /// takes token type 0 (the tokenizers return no token types for these models).
    Roberta,
}

impl EncoderFamily {
    /// The family of a `model_type`, if this crate runs it.
    pub fn of_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "bert" => Some(EncoderFamily::Bert),
            "roberta" | "xlm-roberta" => Some(EncoderFamily::Roberta),
            _ => None,
        }
    }
}

/// Upper bound on a sequence length read from `tokenizer_config.json`; transformers writes a huge
/// sentinel (`1e30`) there when it does not know the limit.
pub(crate) const SANE_MAX_LENGTH: usize = 1 << 20;

/// The architecture parameters of a BERT-family encoder (`config.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the hidden states.
    pub hidden_size: usize,
    /// Number of transformer layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads per layer.
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Activation of the feed-forward layer (`gelu`, `gelu_new`, `relu`, ...).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// The model family (`bert`); absent in some old checkpoints.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Whether the checkpoint is a causal decoder (a BERT with `is_decoder` attends only to the
    /// past, which the bidirectional forward does not do).
    #[serde(default)]
    pub is_decoder: bool,
    /// Number of learned positions.
    pub max_position_embeddings: usize,
    /// Number of token types (segments).
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// Epsilon of every layer norm.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Only `absolute` is supported.
    #[serde(default = "default_position_type")]
    pub position_embedding_type: String,
    /// Id of the padding token (when `config.json` has none: 0 for BERT, 1 for RoBERTa, as
    /// in transformers' configuration classes).
    #[serde(default = "pad_not_given")]
    pub pad_token_id: u32,
    /// Architectures named by the checkpoint (`BertModel`, `BertForMaskedLM`, ...).
    #[serde(default)]
    pub architectures: Vec<String>,
    /// Number of labels of a classification head (`id2label` decides when absent).
    #[serde(default)]
    pub num_labels: Option<usize>,
    /// Label names of a classification head.
    #[serde(default)]
    pub id2label: Option<serde_json::Map<String, serde_json::Value>>,
}

fn default_act() -> String {
    "gelu".to_owned()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_position_type() -> String {
    "absolute".to_owned()
}
/// Marks a `pad_token_id` absent from `config.json`, until the family's default replaces it.
const PAD_NOT_GIVEN: u32 = u32::MAX;
fn pad_not_given() -> u32 {
    PAD_NOT_GIVEN
}

impl BertConfig {
    /// Reads and validates `config.json`.
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let mut cfg: BertConfig = read_json(path)?;
        cfg.check_architecture(path)?;
        if cfg.pad_token_id == PAD_NOT_GIVEN {
            cfg.pad_token_id = match cfg.family() {
                EncoderFamily::Bert => 0,
                EncoderFamily::Roberta => 1,
            };
        }
        let bad = |r: String| Err(EmbedError::bad_config(path, r));
        if cfg.hidden_size == 0 || cfg.num_attention_heads == 0 {
            return bad("hidden_size and num_attention_heads must be positive".into());
        }
        if !cfg.hidden_size.is_multiple_of(cfg.num_attention_heads) {
            return bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                cfg.hidden_size, cfg.num_attention_heads
            ));
        }
        if cfg.position_embedding_type != "absolute" {
            return bad(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                cfg.position_embedding_type
            ));
        }
        if crate::bert::Activation::parse(&cfg.hidden_act).is_none() {
            return bad(format!("hidden_act {:?} is not supported", cfg.hidden_act));
        }
        if cfg.max_tokens() < 2 {
            return bad(format!(
                "max_position_embeddings {} leaves no room for two tokens after the {} \
                 positions a {:?} encoder reserves (pad_token_id {} + 1)",
                cfg.max_position_embeddings,
                cfg.max_position_embeddings - cfg.max_tokens(),
                cfg.family(),
                cfg.pad_token_id
            ));
        }
        Ok(cfg)
    }

    /// The encoder family: from `model_type`, else from the architectures (a checkpoint
    /// without `model_type` naming `RobertaModel`), else BERT.
    pub fn family(&self) -> EncoderFamily {
        if let Some(f) = self
            .model_type
            .as_deref()
            .and_then(EncoderFamily::of_model_type)
        {
            return f;
        }
        let roberta = self
            .architectures
            .iter()
            .any(|a| a.starts_with("Roberta") || a.starts_with("XLMRoberta"));
        if roberta {
            EncoderFamily::Roberta
        } else {
            EncoderFamily::Bert
        }
    }

    /// The longest input in tokens (special tokens included) the position table allows: every
    /// position for BERT; for RoBERTa the positions after `pad_token_id` (positions start at
    /// `pad_token_id + 1`, so XLM-R's 514 positions hold 512 tokens).
    pub fn max_tokens(&self) -> usize {
        match self.family() {
            EncoderFamily::Bert => self.max_position_embeddings,
            EncoderFamily::Roberta => self
                .max_position_embeddings
                .saturating_sub(self.pad_token_id as usize + 1),
        }
    }

    /// Refuses a `model_type`, an architecture or a decoder flag the BERT forward does not
    /// implement.
    fn check_architecture(&self, path: &Path) -> Result<(), EmbedError> {
        let refuse = |what: String| {
            Err(EmbedError::UnsupportedArchitecture {
                path: path.to_path_buf(),
                what,
                supported: ARCHITECTURES_TEXT,
            })
        };
        if let Some(t) = &self.model_type {
            if !SUPPORTED_MODEL_TYPES.contains(&t.as_str()) {
                return refuse(format!("model_type {t:?}"));
            }
        }
        let unknown: Vec<&String> = self
            .architectures
            .iter()
            .filter(|a| !SUPPORTED_ARCHITECTURES.contains(&a.as_str()))
            .collect();
        if !unknown.is_empty() {
            return refuse(format!("architectures {unknown:?}"));
        }
        if self.is_decoder {
            return refuse("is_decoder true (a causal BERT decoder)".into());
        }
        Ok(())
    }

    /// Number of outputs of a sequence-classification head.
    pub fn labels(&self) -> usize {
        self.num_labels
            .or_else(|| self.id2label.as_ref().map(|m| m.len()))
            .unwrap_or(1)
            .max(1)
    }
}

/// What the sentence-transformers files of a model say (defaults when they are absent).
#[derive(Debug, Clone, PartialEq)]
pub struct SentenceConfig {
    /// Pooling of token states into one vector.
    pub pooling: Pooling,
    /// Whether the tokens of an instruction prefix take part in pooling (`include_prompt`,
    /// true unless the pooling module says otherwise).
    pub include_prompt: bool,
    /// The directories of the `Dense` modules that follow pooling, in order.
    pub dense: Vec<PathBuf>,
    /// Whether the pipeline ends with an L2 normalisation.
    pub normalize: bool,
    /// Maximum number of tokens, special tokens included.
    pub max_seq_length: usize,
}

#[derive(Deserialize)]
struct SentenceBertFile {
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct TokenizerConfigFile {
    model_max_length: Option<f64>,
}

/// What a model directory holds (see [`ModelDir::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// A BERT-family transformer with optional sentence-transformers modules
    /// ([`crate::BertEmbedder`]).
    Transformer,
    /// A Model2Vec static model: one vector per token, averaged ([`crate::StaticEmbedder`]).
    Static,
    /// A CLIP dual encoder: texts and images into one space ([`crate::ClipModel`]).
    Clip,
}

/// The files of one local model directory.
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
}

impl ModelDir {
    /// Resolves `spec`: an existing directory, or a Hugging Face id found in the local cache
    /// or downloaded into it (see [`crate::hub`]; the environment decides where from and
    /// whether).
    pub fn resolve(spec: &str) -> Result<Self, EmbedError> {
        Self::resolve_with(spec, &HubOptions::from_env(hf_cache_dir()))
    }

    /// [`ModelDir::resolve`] with explicit hub options.
    pub fn resolve_with(spec: &str, hub: &HubOptions) -> Result<Self, EmbedError> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelDir {
                root: path.to_path_buf(),
            });
        }
        if looks_like_hub_id(spec) {
            if let Some(dir) = cached_snapshot(&hub.cache, spec) {
                return Ok(ModelDir { root: dir });
            }
            return match crate::hub::download(spec, hub) {
                Ok(root) => Ok(ModelDir { root }),
                Err(reason) => Err(crate::hub::not_found(spec, &hub.cache, reason)),
            };
        }
        Err(EmbedError::MissingFile {
            path: path.to_path_buf(),
        })
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Path of a file in the model directory, checked to exist.
    pub fn require(&self, name: &str) -> Result<PathBuf, EmbedError> {
        let p = self.root.join(name);
        if p.is_file() {
            Ok(p)
        } else {
            Err(EmbedError::MissingFile { path: p })
        }
    }

    /// A stable, human-readable id: the directory name (or the hub id's last part).
    pub fn model_id(&self) -> String {
        // Hub snapshots live in `models--org--name/snapshots/<hash>`.
        let snapshot_of = self
            .root
            .ancestors()
            .filter_map(|a| a.file_name()?.to_str())
            .find_map(|n| n.strip_prefix("models--").map(|s| s.replace("--", "/")));
        snapshot_of.unwrap_or_else(|| {
            self.root
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("model")
                .to_owned()
        })
    }

    /// The transformer configuration; a Model2Vec directory is refused by name (it has no
    /// transformer: [`crate::StaticEmbedder`] loads it).
    pub fn bert_config(&self) -> Result<BertConfig, EmbedError> {
        let path = self.require(CONFIG_FILE)?;
        if self.kind()? == ModelKind::Static {
            return Err(EmbedError::UnsupportedArchitecture {
                path,
                what: "a Model2Vec static model (no transformer; TextEmbedder and \
                       StaticEmbedder load it as an embedding model)"
                    .into(),
                supported: ARCHITECTURES_TEXT,
            });
        }
        BertConfig::load(&path)
    }

    /// Which kind of model the directory holds. A Model2Vec static model is recognised by a
    /// `modules.json` whose first module is `StaticEmbedding`, by `model_type` `"model2vec"`
    /// (or architecture `StaticModel`) in `config.json`, or — for the bare `config.json` that
    /// model2vec's older releases and some packages ship (`{"normalize": …,
    /// "embedding_dtype": …}`) — by a `config.json` without `model_type` or `hidden_size`
    /// next to weights holding an `"embeddings"` tensor (such a `config.json` next to other
    /// weights is neither kind, and an error). Everything else is a transformer (whose loader
    /// then checks `config.json` and names what it does not run).
    pub fn kind(&self) -> Result<ModelKind, EmbedError> {
        if let Some(modules) = crate::modules::module_types(&self.root)? {
            if let Some((_, first)) = modules.first() {
                if crate::modules::is_static_embedding(first) {
                    return Ok(ModelKind::Static);
                }
            }
        }
        let cfg_path = self.root.join(CONFIG_FILE);
        if !cfg_path.is_file() {
            return Ok(ModelKind::Transformer);
        }
        let cfg: serde_json::Value = read_json(&cfg_path)?;
        let model_type = cfg.get("model_type").and_then(|t| t.as_str());
        if model_type == Some(crate::clip::CLIP_MODEL_TYPE) {
            return Ok(ModelKind::Clip);
        }
        let static_arch = cfg
            .get("architectures")
            .and_then(|a| a.as_array())
            .is_some_and(|a| a.iter().any(|x| x == "StaticModel"));
        if model_type == Some(MODEL2VEC_MODEL_TYPE) || static_arch {
            return Ok(ModelKind::Static);
        }
        if model_type.is_none() && cfg.get("hidden_size").is_none() {
            let weights = self.require(WEIGHTS_FILE)?;
            let names = crate::raw_tensors::RawTensors::header_names(&weights)?;
            if names
                .iter()
                .any(|n| n == crate::model2vec::EMBEDDINGS_TENSOR)
            {
                return Ok(ModelKind::Static);
            }
            return Err(EmbedError::UnsupportedArchitecture {
                path: cfg_path,
                what: "a model that is neither a transformer (no model_type, no hidden_size) \
                       nor a Model2Vec model (no \"embeddings\" tensor in model.safetensors)"
                    .into(),
                supported: ARCHITECTURES_TEXT,
            });
        }
        Ok(ModelKind::Transformer)
    }

    /// Pooling, dense layers, normalisation and sequence length from the sentence-transformers
    /// files, with `default_pooling` when the model has neither `modules.json` nor a pooling
    /// configuration. Refuses modules, module orders and pooling modes that are not
    /// implemented (see the `modules` module).
    pub fn sentence_config(
        &self,
        bert: &BertConfig,
        default_pooling: Pooling,
    ) -> Result<SentenceConfig, EmbedError> {
        let pipeline = crate::modules::Pipeline::read(&self.root, bert.hidden_size)?;
        let (pooling, include_prompt) = match pipeline.pooling {
            Some(p) => (p.pooling, p.include_prompt),
            None => (default_pooling, true),
        };
        Ok(SentenceConfig {
            pooling,
            include_prompt,
            dense: pipeline.dense,
            normalize: pipeline.normalize,
            max_seq_length: self.max_seq_length(bert)?,
        })
    }

    /// The model's sequence limit: `sentence_bert_config.json`'s `max_seq_length`, else
    /// `tokenizer_config.json`'s `model_max_length`, never above what the position table
    /// allows ([`BertConfig::max_tokens`]).
    pub fn max_seq_length(&self, bert: &BertConfig) -> Result<usize, EmbedError> {
        let st = self.root.join("sentence_bert_config.json");
        let mut len = None;
        if st.is_file() {
            let f: SentenceBertFile = read_json(&st)?;
            len = f.max_seq_length;
        }
        if len.is_none() {
            let tc = self.root.join("tokenizer_config.json");
            if tc.is_file() {
                let f: TokenizerConfigFile = read_json(&tc)?;
                len = f
                    .model_max_length
                    .filter(|&m| m >= 2.0 && m < SANE_MAX_LENGTH as f64)
                    .map(|m| m as usize);
            }
        }
        let len = len.unwrap_or(bert.max_tokens()).min(bert.max_tokens());
        if len < 2 {
            return Err(EmbedError::bad_config(
                &self.root,
                format!("max_seq_length {len} leaves no room for the special tokens"),
            ));
        }
        Ok(len)
    }
}

/// Parses a JSON file, naming it in any error.
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, EmbedError> {
    let bytes = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
    serde_json::from_slice(&bytes).map_err(|source| EmbedError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p != &"."
                && p != &".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
fn hf_cache_dir() -> PathBuf {
    if let Some(p) = std::env::var_os("HF_HUB_CACHE") {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("HF_HOME") {
        return PathBuf::from(p).join("hub");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".cache").join("huggingface").join("hub")
}

/// The snapshot that `refs/main` points at, when the cache holds one with a config.
fn cached_snapshot(cache: &Path, id: &str) -> Option<PathBuf> {
    let id = crate::hub::full_id(id);
    let repo = cache.join(format!("models--{}", id.replace('/', "--")));
    let rev = std::fs::read_to_string(repo.join("refs").join("main")).ok()?;
    let dir = repo.join("snapshots").join(rev.trim());
    dir.join(CONFIG_FILE).is_file().then_some(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids_are_recognised() {
        assert!(looks_like_hub_id("sentence-transformers/all-MiniLM-L6-v2"));
        assert!(looks_like_hub_id("all-MiniLM-L6-v2"));
        assert!(!looks_like_hub_id("./models/x"));
        assert!(!looks_like_hub_id("/abs/path"));
        assert!(!looks_like_hub_id("a/b/c"));
    }

    #[test]
    fn unknown_hub_id_points_at_setup_script() {
        let dir = tempfile::tempdir().unwrap();
        let hub = HubOptions {
            endpoint: "http://127.0.0.1:9".into(),
            cache: dir.path().to_path_buf(),
            offline: false,
        };
        let err = ModelDir::resolve_with("nobody-has/this-model-xyz", &hub).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, EmbedError::ModelNotFound { .. }));
        assert!(msg.contains("setup-models.sh"), "{msg}");
    }

    fn config(json: serde_json::Value) -> Result<BertConfig, EmbedError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(CONFIG_FILE);
        std::fs::write(&p, json.to_string()).unwrap();
        BertConfig::load(&p)
    }

    fn base(model_type: &str, positions: usize, pad: u32) -> serde_json::Value {
        serde_json::json!({"vocab_size": 10, "hidden_size": 8, "num_hidden_layers": 1,
            "num_attention_heads": 2, "intermediate_size": 16, "model_type": model_type,
            "max_position_embeddings": positions, "pad_token_id": pad})
    }

    #[test]
    fn roberta_positions_start_after_the_padding_id() {
        let xlmr = config(base("xlm-roberta", 514, 1)).unwrap();
        assert_eq!(xlmr.family(), EncoderFamily::Roberta);
        assert_eq!(xlmr.max_tokens(), 512);
        let bert = config(base("bert", 512, 0)).unwrap();
        assert_eq!(
            (bert.family(), bert.max_tokens()),
            (EncoderFamily::Bert, 512)
        );
        // No model_type: the architecture decides.
        let mut v = base("roberta", 130, 1);
        v.as_object_mut().unwrap().remove("model_type");
        v["architectures"] = serde_json::json!(["RobertaModel"]);
        assert_eq!(config(v).unwrap().family(), EncoderFamily::Roberta);
        // transformers' default padding ids when config.json has none.
        for (t, pad) in [("bert", 0), ("xlm-roberta", 1)] {
            let mut v = base(t, 512, 0);
            v.as_object_mut().unwrap().remove("pad_token_id");
            assert_eq!(config(v).unwrap().pad_token_id, pad, "{t}");
        }
        // A position table that leaves no room after the padding id.
        let err = config(base("roberta", 3, 1)).unwrap_err();
        assert!(
            err.to_string().contains("max_position_embeddings 3"),
            "{err}"
        );
    }

    #[test]
    fn missing_directory_is_a_missing_file() {
        let err = ModelDir::resolve("/definitely/not/here").unwrap_err();
        assert!(matches!(err, EmbedError::MissingFile { .. }), "{err}");
        assert!(err.to_string().contains("setup-models.sh"));
    }
}

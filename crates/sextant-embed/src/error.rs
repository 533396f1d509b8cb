//! The one error type of the embedding layer.
//!
//! Messages are written for the person who runs Sextant: a missing model file names the path and
//! the script that fetches it, a bad configuration names the file and the field. Errors from
//! candle and the tokenizer are kept as sources, never flattened into strings.

use std::path::PathBuf;

/// The script that installs the default models into `models/`.
pub const SETUP_SCRIPT: &str = "scripts/setup-models.sh";

/// Everything that can go wrong while loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A file the model needs is not there.
    #[error("model file {path} is missing (run {SETUP_SCRIPT} to install the default models, or point at a directory in the Hugging Face layout)")]
    MissingFile {
        /// The path that was looked for.
        path: PathBuf,
    },

    /// A model was named that is neither a local directory nor in the Hugging Face cache.
    #[error("model {spec:?} is not a local directory, is not in the Hugging Face cache ({cache}), and could not be downloaded ({reason}): run {SETUP_SCRIPT} for the default models, or pass a model directory")]
    ModelNotFound {
        /// What the user asked for.
        spec: String,
        /// The cache directory that was searched.
        cache: String,
        /// Why the download did not happen or failed.
        reason: String,
    },

    /// Reading a file failed.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// A configuration file is malformed or asks for something we do not support.
    #[error("bad model configuration in {path}: {reason}")]
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The checkpoint is of an architecture this crate does not implement (a RoBERTa or GPT-2
    /// `config.json` would otherwise load into the BERT forward and embed garbage).
    #[error("{path}: {what} is not supported; Sextant runs {supported}")]
    UnsupportedArchitecture {
        /// The `config.json`.
        path: PathBuf,
        /// What the file asks for (`model_type "roberta"`, `architectures ["GPT2Model"]`, ...).
        what: String,
        /// What is implemented.
        supported: &'static str,
    },

    /// `modules.json` names a sentence-transformers module this crate does not implement, or
    /// lists the modules in an order it does not run.
    #[error("{path}: module {module} is not supported; Sextant runs {supported}")]
    UnsupportedModule {
        /// The `modules.json` (or the module's own configuration).
        path: PathBuf,
        /// The module, as the file names it.
        module: String,
        /// What is implemented.
        supported: &'static str,
    },

    /// A pooling configuration asks for something this crate does not implement.
    #[error("{path}: pooling {what} is not supported ({reason})")]
    UnsupportedPooling {
        /// The pooling module's `config.json`.
        path: PathBuf,
        /// The flags or values in question.
        what: String,
        /// Why, and what to do instead.
        reason: &'static str,
    },

    /// A configuration file is not valid JSON of the expected shape.
    #[error("cannot parse {path}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },

    /// The weights lack a tensor the architecture needs.
    #[error("tensor {name:?} not found in {path} (tried {tried:?})")]
    MissingTensor {
        /// The logical name.
        name: String,
        /// The weights file.
        path: PathBuf,
        /// Every stored name that was tried.
        tried: Vec<String>,
    },

    /// A tensor has a shape that contradicts the configuration.
    #[error("tensor {name:?} has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The tensor.
        name: String,
        /// What the configuration implies.
        expected: Vec<usize>,
        /// What the file holds.
        got: Vec<usize>,
    },

    /// The tokenizer could not be loaded or failed on an input.
    #[error("tokenizer error while {context}")]
    Tokenizer {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: tokenizers::Error,
    },

    /// A tensor operation failed.
    #[error("tensor computation failed")]
    Candle(#[from] candle_core::Error),

    /// An argument is out of range (a dimension of 0, more threads than allowed, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A vector or query comes from a different model than the one it is compared with.
    #[error("model fingerprint mismatch on {field}: expected {expected}, got {got}")]
    FingerprintMismatch {
        /// The first field that differs.
        field: &'static str,
        /// The value on record.
        expected: String,
        /// The value presented.
        got: String,
    },

    /// An embedding cache file is damaged or from another format version.
    #[error("embedding cache file {path} is unusable: {reason}")]
    CacheFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The thread pool could not be built.
    #[error("cannot build the thread pool")]
    ThreadPool(#[from] rayon::ThreadPoolBuildError),
}

impl EmbedError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        let path = path.into();
        if source.kind() == std::io::ErrorKind::NotFound {
            EmbedError::MissingFile { path }
        } else {
            EmbedError::Io { path, source }
        }
    }

    pub(crate) fn bad_config(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        EmbedError::BadConfig {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

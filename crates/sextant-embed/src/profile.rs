//! Where an embedding job spends its time: coarse stage timers (tokenisation, forward pass,
//! pooling) and per-operation timers inside the forward pass.
//!
//! candle's CPU operations run synchronously, so a wall-clock timer around an operation measures
//! that operation. The timers are always on: a few dozen `Instant::now()` calls per batch cost
//! microseconds against milliseconds of matrix products, and a profile that needs a special
//! build is a profile nobody takes.

use std::time::Instant;

use serde::Serialize;

/// Seconds spent per operation of [`crate::BertModel::forward_profiled`], summed over layers and
/// calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ForwardProfile {
    /// Embedding lookups, their sum and the embedding layer norm.
    pub embeddings_s: f64,
    /// The query, key and value projections.
    pub qkv_s: f64,
    /// Splitting states into heads and merging them back (layout copies).
    pub heads_s: f64,
    /// Attention scores: `q·kᵀ`, scaling and the mask bias.
    pub scores_s: f64,
    /// Softmax over the keys.
    pub softmax_s: f64,
    /// Attention-weighted values: `probs·v`.
    pub context_s: f64,
    /// The attention output projection.
    pub attn_out_s: f64,
    /// The feed-forward up-projection.
    pub ffn_up_s: f64,
    /// The feed-forward activation.
    pub activation_s: f64,
    /// The feed-forward down-projection.
    pub ffn_down_s: f64,
    /// Residual additions and the two layer norms of every layer.
    pub residual_norm_s: f64,
}

impl ForwardProfile {
    /// Sum of all operations.
    pub fn total_s(&self) -> f64 {
        self.embeddings_s
            + self.qkv_s
            + self.heads_s
            + self.scores_s
            + self.softmax_s
            + self.context_s
            + self.attn_out_s
            + self.ffn_up_s
            + self.activation_s
            + self.ffn_down_s
            + self.residual_norm_s
    }

    /// Time in the dense projections (QKV, attention output, feed-forward), the part whose
    /// FLOPs scale with tokens only.
    pub fn projections_s(&self) -> f64 {
        self.qkv_s + self.attn_out_s + self.ffn_up_s + self.ffn_down_s
    }

    /// Named entries, in forward order (for reports).
    pub fn entries(&self) -> [(&'static str, f64); 11] {
        [
            ("embeddings", self.embeddings_s),
            ("qkv projections", self.qkv_s),
            ("head split/merge copies", self.heads_s),
            ("attention scores", self.scores_s),
            ("softmax", self.softmax_s),
            ("attention context", self.context_s),
            ("attention output projection", self.attn_out_s),
            ("ffn up projection", self.ffn_up_s),
            ("ffn activation", self.activation_s),
            ("ffn down projection", self.ffn_down_s),
            ("residual + layer norm", self.residual_norm_s),
        ]
    }
}

/// Counts and stage timers of [`crate::BertEmbedder::embed_profiled`], summed over calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct EmbedProfile {
    /// Texts embedded.
    pub sequences: usize,
    /// Forward passes run.
    pub batches: usize,
    /// Real tokens (special tokens included, padding excluded).
    pub tokens: usize,
    /// Tokens the forward passes computed (padding included).
    pub padded_tokens: usize,
    /// Sum over texts of the squared real length (for attention FLOPs).
    pub tokens_squared: usize,
    /// Sum over batches of `batch × padded_length²` (attention FLOPs actually executed).
    pub padded_tokens_squared: usize,
    /// Tokenisation (prefixing, WordPiece, sorting by length).
    pub tokenize_s: f64,
    /// Building the padded id, segment and mask tensors.
    pub batch_s: f64,
    /// The encoder forward pass.
    pub forward_s: f64,
    /// Pooling, Matryoshka truncation, normalisation and copying out.
    pub pool_s: f64,
    /// The forward pass, per operation.
    pub forward_ops: ForwardProfile,
}

impl ForwardProfile {
    fn merge(&mut self, o: &ForwardProfile) {
        self.embeddings_s += o.embeddings_s;
        self.qkv_s += o.qkv_s;
        self.heads_s += o.heads_s;
        self.scores_s += o.scores_s;
        self.softmax_s += o.softmax_s;
        self.context_s += o.context_s;
        self.attn_out_s += o.attn_out_s;
        self.ffn_up_s += o.ffn_up_s;
        self.activation_s += o.activation_s;
        self.ffn_down_s += o.ffn_down_s;
        self.residual_norm_s += o.residual_norm_s;
    }
}

impl EmbedProfile {
    /// Adds `o`'s counts and timers (profiles of batches run on different threads add up to
    /// thread-seconds).
    pub fn merge(&mut self, o: &EmbedProfile) {
        self.sequences += o.sequences;
        self.batches += o.batches;
        self.tokens += o.tokens;
        self.padded_tokens += o.padded_tokens;
        self.tokens_squared += o.tokens_squared;
        self.padded_tokens_squared += o.padded_tokens_squared;
        self.tokenize_s += o.tokenize_s;
        self.batch_s += o.batch_s;
        self.forward_s += o.forward_s;
        self.pool_s += o.pool_s;
        self.forward_ops.merge(&o.forward_ops);
    }
}

/// Runs `f`, adding its wall time to `slot`.
pub(crate) fn timed<T>(slot: &mut f64, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    *slot += start.elapsed().as_secs_f64();
    out
}

//! `config.json` of a `CLIPModel` directory: the two towers' sizes and the shared projection.
//!
//! Every field that transformers gives a default gets the same default here (saved configs
//! omit fields equal to the defaults of the transformers version that wrote them), and
//! everything that would make the forward pass silently wrong is checked at load time: the
//! model type, head counts that divide the width, a square patch grid, activations we run.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::bert::Activation;
use crate::config::read_json;
use crate::EmbedError;

/// The `model_type` of a CLIP dual encoder.
pub const CLIP_MODEL_TYPE: &str = "clip";

/// What [`ClipConfig::load`] accepts, for error messages.
pub(crate) const CLIP_SUPPORTED: &str =
    "CLIP dual encoders (model_type \"clip\", architecture CLIPModel)";

/// The `eos_token_id` that transformers treats as "legacy": such configs pool at the highest
/// token id (argmax of the ids) instead of at the first end-of-text token.
pub const LEGACY_EOS_TOKEN_ID: u32 = 2;

/// The feed-forward activation of a CLIP tower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClipActivation {
    /// `x · sigmoid(1.702 x)` (`quick_gelu`, OpenAI's checkpoints).
    QuickGelu,
    /// One of the BERT activations (`gelu`, `gelu_new`, `relu`, ...), for re-trained CLIPs.
    Bert(Activation),
}

impl ClipActivation {
    /// Parses `hidden_act`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "quick_gelu" => Some(ClipActivation::QuickGelu),
            other => Activation::parse(other).map(ClipActivation::Bert),
        }
    }
}

/// Sizes of one transformer tower.
#[derive(Debug, Clone, PartialEq)]
pub struct TowerConfig {
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Number of layers.
    pub num_hidden_layers: usize,
    /// Number of attention heads (divides `hidden_size`).
    pub num_attention_heads: usize,
    /// Feed-forward activation.
    pub activation: ClipActivation,
    /// Layer norm epsilon.
    pub layer_norm_eps: f64,
}

/// The text tower's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipTextConfig {
    /// Layer sizes.
    pub tower: TowerConfig,
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Rows of the position table: the longest token sequence (77 for OpenAI's models).
    pub max_position_embeddings: usize,
    /// The end-of-text id whose first occurrence is pooled ([`LEGACY_EOS_TOKEN_ID`]: the
    /// position of the highest id, as transformers does for such configs).
    pub eos_token_id: u32,
}

/// The vision tower's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipVisionConfig {
    /// Layer sizes.
    pub tower: TowerConfig,
    /// Input channels (3).
    pub num_channels: usize,
    /// Side of the square input image in pixels.
    pub image_size: usize,
    /// Side of a square patch in pixels (divides `image_size`).
    pub patch_size: usize,
}

impl ClipVisionConfig {
    /// Patches along one side.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }

    /// Tokens of an image: the class token and one per patch.
    pub fn tokens(&self) -> usize {
        self.grid() * self.grid() + 1
    }
}

/// A `CLIPModel` configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipConfig {
    /// Text tower.
    pub text: ClipTextConfig,
    /// Vision tower.
    pub vision: ClipVisionConfig,
    /// Dimension of the shared embedding space.
    pub projection_dim: usize,
}

#[derive(Deserialize)]
struct File {
    model_type: Option<String>,
    #[serde(default)]
    architectures: Vec<String>,
    #[serde(default = "d_projection")]
    projection_dim: usize,
    text_config: Option<TextFile>,
    vision_config: Option<VisionFile>,
}

#[derive(Deserialize)]
struct TextFile {
    #[serde(flatten)]
    tower: TowerFile,
    vocab_size: Option<usize>,
    max_position_embeddings: Option<usize>,
    eos_token_id: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct VisionFile {
    #[serde(flatten)]
    tower: TowerFile,
    num_channels: Option<usize>,
    image_size: Option<serde_json::Value>,
    patch_size: Option<serde_json::Value>,
}

/// The layer fields both towers have; absent ones take the tower's [`TowerDefaults`].
#[derive(Deserialize)]
struct TowerFile {
    hidden_size: Option<usize>,
    intermediate_size: Option<usize>,
    num_hidden_layers: Option<usize>,
    num_attention_heads: Option<usize>,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
}

/// transformers' `CLIPTextConfig` / `CLIPVisionConfig` defaults (openai/clip-vit-base-patch32).
struct TowerDefaults {
    hidden_size: usize,
    intermediate_size: usize,
    num_attention_heads: usize,
}

const TEXT_DEFAULTS: TowerDefaults = TowerDefaults {
    hidden_size: 512,
    intermediate_size: 2048,
    num_attention_heads: 8,
};
const VISION_DEFAULTS: TowerDefaults = TowerDefaults {
    hidden_size: 768,
    intermediate_size: 3072,
    num_attention_heads: 12,
};
const DEFAULT_LAYERS: usize = 12;
const DEFAULT_ACTIVATION: &str = "quick_gelu";
const DEFAULT_LAYER_NORM_EPS: f64 = 1e-5;
const DEFAULT_PROJECTION_DIM: usize = 512;
const DEFAULT_VOCAB_SIZE: usize = 49408;
const DEFAULT_TEXT_POSITIONS: usize = 77;
const DEFAULT_EOS_TOKEN_ID: u64 = 49407;
const DEFAULT_NUM_CHANNELS: usize = 3;
const DEFAULT_IMAGE_SIZE: u64 = 224;
const DEFAULT_PATCH_SIZE: u64 = 32;

fn d_projection() -> usize {
    DEFAULT_PROJECTION_DIM
}

impl ClipConfig {
    /// Reads and checks `config.json`. A file of another model type (a BERT directory, say)
    /// is [`EmbedError::UnsupportedArchitecture`].
    pub fn load(path: &Path) -> Result<Self, EmbedError> {
        let f: File = read_json(path)?;
        let unsupported = |what: String| EmbedError::UnsupportedArchitecture {
            path: path.to_path_buf(),
            what,
            supported: CLIP_SUPPORTED,
        };
        match f.model_type.as_deref() {
            Some(CLIP_MODEL_TYPE) => {}
            Some(other) => return Err(unsupported(format!("model_type {other:?}"))),
            None => return Err(unsupported("a config.json without model_type".into())),
        }
        if let Some(a) = f.architectures.iter().find(|a| *a != "CLIPModel") {
            return Err(unsupported(format!("architecture {a:?}")));
        }
        let bad = |reason: String| EmbedError::bad_config(path, reason);
        let text = f
            .text_config
            .ok_or_else(|| bad("text_config is missing".into()))?;
        let vision = f
            .vision_config
            .ok_or_else(|| bad("vision_config is missing".into()))?;
        let text_tower = tower(path, "text_config", &text.tower, &TEXT_DEFAULTS)?;
        let vision_tower = tower(path, "vision_config", &vision.tower, &VISION_DEFAULTS)?;
        let eos = text
            .eos_token_id
            .unwrap_or_else(|| DEFAULT_EOS_TOKEN_ID.into());
        let eos_token_id = eos
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                bad(format!(
                    "text_config.eos_token_id {eos} is not one token id"
                ))
            })?;
        let vocab_size = text.vocab_size.unwrap_or(DEFAULT_VOCAB_SIZE);
        let positions = text
            .max_position_embeddings
            .unwrap_or(DEFAULT_TEXT_POSITIONS);
        if vocab_size == 0 || positions < 2 {
            return Err(bad(format!(
                "text_config: vocab_size {vocab_size} and max_position_embeddings {positions} \
                 leave no room for a text"
            )));
        }
        let image_size = square(path, "image_size", vision.image_size, DEFAULT_IMAGE_SIZE)?;
        let patch_size = square(path, "patch_size", vision.patch_size, DEFAULT_PATCH_SIZE)?;
        let num_channels = vision.num_channels.unwrap_or(DEFAULT_NUM_CHANNELS);
        if patch_size == 0 || image_size < patch_size || !image_size.is_multiple_of(patch_size) {
            return Err(bad(format!(
                "vision_config: patch_size {patch_size} must divide image_size {image_size}"
            )));
        }
        if num_channels == 0 {
            return Err(bad("vision_config.num_channels is 0".into()));
        }
        if f.projection_dim == 0 {
            return Err(bad("projection_dim is 0".into()));
        }
        Ok(ClipConfig {
            text: ClipTextConfig {
                tower: text_tower,
                vocab_size,
                max_position_embeddings: positions,
                eos_token_id,
            },
            vision: ClipVisionConfig {
                tower: vision_tower,
                num_channels,
                image_size,
                patch_size,
            },
            projection_dim: f.projection_dim,
        })
    }

    /// Whether `dir/config.json` declares a CLIP model (without checking anything else).
    pub fn is_clip_dir(dir: &Path) -> bool {
        let path: PathBuf = dir.join(crate::config::CONFIG_FILE);
        read_json::<serde_json::Value>(&path)
            .is_ok_and(|v| v.get("model_type").and_then(|t| t.as_str()) == Some(CLIP_MODEL_TYPE))
    }
}

fn tower(
    path: &Path,
    section: &str,
    f: &TowerFile,
    d: &TowerDefaults,
) -> Result<TowerConfig, EmbedError> {
    let hidden_size = f.hidden_size.unwrap_or(d.hidden_size);
    let heads = f.num_attention_heads.unwrap_or(d.num_attention_heads);
    if hidden_size == 0 || heads == 0 || !hidden_size.is_multiple_of(heads) {
        return Err(EmbedError::bad_config(
            path,
            format!(
                "{section}: hidden_size {hidden_size} is not a multiple of num_attention_heads \
                 {heads}"
            ),
        ));
    }
    let act = f.hidden_act.as_deref().unwrap_or(DEFAULT_ACTIVATION);
    let activation = ClipActivation::parse(act).ok_or_else(|| {
        EmbedError::bad_config(
            path,
            format!("{section}: hidden_act {act:?} is not supported"),
        )
    })?;
    Ok(TowerConfig {
        hidden_size,
        intermediate_size: f.intermediate_size.unwrap_or(d.intermediate_size),
        num_hidden_layers: f.num_hidden_layers.unwrap_or(DEFAULT_LAYERS),
        num_attention_heads: heads,
        activation,
        layer_norm_eps: f.layer_norm_eps.unwrap_or(DEFAULT_LAYER_NORM_EPS),
    })
}

/// An `image_size`/`patch_size` that is one number or a square `[n, n]`.
fn square(
    path: &Path,
    field: &str,
    v: Option<serde_json::Value>,
    default: u64,
) -> Result<usize, EmbedError> {
    let Some(v) = v else {
        return Ok(default as usize);
    };
    let n = match &v {
        serde_json::Value::Array(a) if a.len() == 2 && a[0] == a[1] => a[0].as_u64(),
        other => other.as_u64(),
    };
    n.map(|n| n as usize).ok_or_else(|| {
        EmbedError::bad_config(
            path,
            format!("vision_config.{field} {v} is not one size or a square [n, n]"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(json: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(&p, json).unwrap();
        (dir, p)
    }

    #[test]
    fn defaults_are_openai_vit_b_32() {
        let (_d, p) = write(r#"{"model_type": "clip", "text_config": {}, "vision_config": {}}"#);
        let c = ClipConfig::load(&p).unwrap();
        assert_eq!(c.projection_dim, 512);
        assert_eq!(c.vision.tokens(), 50);
        assert_eq!(c.text.eos_token_id, 49407);
        assert_eq!(c.text.tower.activation, ClipActivation::QuickGelu);
    }

    #[test]
    fn other_models_are_refused_by_name() {
        let (_d, p) = write(r#"{"model_type": "bert", "hidden_size": 8}"#);
        let e = ClipConfig::load(&p).unwrap_err();
        assert!(
            matches!(e, EmbedError::UnsupportedArchitecture { .. }),
            "{e}"
        );
        assert!(e.to_string().contains("\"bert\""), "{e}");
        let (_d, p) = write(
            r#"{"model_type": "clip", "architectures": ["CLIPSegForImageSegmentation"],
                "text_config": {}, "vision_config": {}}"#,
        );
        assert!(ClipConfig::load(&p).is_err());
        let (_d, p) = write(
            r#"{"model_type": "clip", "text_config": {}, "vision_config": {"patch_size": 30}}"#,
        );
        let e = ClipConfig::load(&p).unwrap_err();
        assert!(matches!(e, EmbedError::BadConfig { .. }), "{e}");
    }
}

//! CLIP: images and texts embedded into one vector space.
//!
//! [`ClipModel`] loads any transformers `CLIPModel` directory (sizes from `config.json`,
//! preprocessing from `preprocessor_config.json`, the CLIP BPE tokenizer from
//! `tokenizer.json`) and embeds images ([`ClipModel::embed_images`]) and texts
//! ([`ClipModel::embed_texts`]) as `get_image_features` / `get_text_features` do, optionally
//! L2-normalised. It also implements [`Embedder`] for its text side, so a collection can hold
//! CLIP vectors and be queried with text; both sides share one [`ModelFingerprint`].
//!
//! The parts, each in its own file:
//!
//! - `decode`: PNG and WebP through the `image` crate (pure Rust), JPEG through `jpeg`
//!   (libjpeg-turbo's decoder, which Pillow uses, with Pillow's settings and CMYK rules), and
//!   the conversion to RGB with Pillow's rules (alpha over white, 16-bit, PNG colour keys);
//! - `resize`: Pillow's convolution resampler, byte for byte;
//! - `processor`: [`ClipImageProcessor`], transformers' CLIP preprocessing;
//! - `config`, `tower`: the model configuration and the two transformer towers.
//!
//! Preprocessing is the contract that matters most: a CLIP model only gives its published
//! quality on pixels prepared exactly as in training, and the tests compare every stage (the
//! decoded RGB, the resized and cropped bytes, the f32 pixel values) with transformers' PIL
//! backend by hash, on 31 real pictures (every PNG colour type, 16-bit and palettes with
//! transparency; baseline, progressive, optimised, greyscale, CMYK and 4:2:0/4:2:2/4:4:4 JPEG;
//! lossy, lossy-with-alpha and lossless WebP): all are byte-identical. JPEG is the format where
//! decoders legitimately differ, hence libjpeg-turbo's decoder, the one Pillow uses.
//!
//! Images are used as stored: the EXIF orientation is not applied, as in transformers when it
//! is given an image object (only a path or URL given to transformers is rotated, through
//! `load_image`, which also drops alpha instead of compositing it).

mod config;
mod decode;
mod error;
mod jpeg;
mod processor;
mod resize;
mod tower;

use std::path::Path;

use candle_core::{Device, Tensor};
use image::{DynamicImage, RgbImage};
use rayon::prelude::*;

pub use config::{
    ClipActivation, ClipConfig, ClipTextConfig, ClipVisionConfig, TowerConfig, CLIP_MODEL_TYPE,
    LEGACY_EOS_TOKEN_ID,
};
pub use decode::{decode_image, decode_rgb, open_rgb, to_rgb, SUPPORTED_IMAGE_FORMATS};
pub use error::ClipError;
/// The `image` crate the decoders come from (its types are part of this API).
pub use image;
pub use processor::{
    ClipImageProcessor, PixelValues, ResizeTarget, DEFAULT_CLIP_IMAGE_SIZE, DEFAULT_RESAMPLE_CODE,
    OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PREPROCESSOR_CONFIG_FILE, PROCESSOR_CONFIG_FILE,
};
pub use resize::{resize_rgb, ResampleFilter};

use crate::bert::Linear;
use crate::config::{ModelDir, CONFIG_FILE, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::embedder::{Embedder, Embeddings, InputKind};
use crate::fingerprint::ModelFingerprint;
use crate::tokenize::{Encoded, TextTokenizer};
use crate::weights::Weights;
use crate::EmbedError;

use tower::{TextTower, VisionTower};

/// Whether [`ClipModel`] L2-normalises its outputs unless told otherwise: CLIP compares
/// images and texts by cosine similarity, which on unit vectors is the dot product.
pub const DEFAULT_CLIP_NORMALIZE: bool = true;
/// Images or texts per forward pass unless told otherwise.
pub const DEFAULT_CLIP_BATCH_SIZE: usize = 32;

/// Options of a [`ClipModel`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClipOptions {
    /// L2-normalise the projected vectors ([`DEFAULT_CLIP_NORMALIZE`]). Off gives
    /// transformers' `get_image_features` / `get_text_features` unchanged.
    pub normalize: bool,
    /// Inputs per forward pass ([`DEFAULT_CLIP_BATCH_SIZE`]); bounds memory, not results.
    pub batch_size: usize,
}

impl Default for ClipOptions {
    fn default() -> Self {
        ClipOptions {
            normalize: DEFAULT_CLIP_NORMALIZE,
            batch_size: DEFAULT_CLIP_BATCH_SIZE,
        }
    }
}

/// A CLIP dual encoder: images and texts into one `projection_dim`-dimensional space.
#[derive(Debug, Clone)]
pub struct ClipModel {
    cfg: ClipConfig,
    options: ClipOptions,
    processor: ClipImageProcessor,
    tokenizer: TextTokenizer,
    vision: VisionTower,
    text: TextTower,
    visual_projection: Linear,
    text_projection: Linear,
    fingerprint: ModelFingerprint,
}

impl ClipModel {
    /// Loads a CLIP model from a directory (or a Hugging Face id, as [`ModelDir::resolve`]
    /// resolves it) with default options.
    pub fn load(spec: &str) -> Result<Self, ClipError> {
        Self::load_with(spec, ClipOptions::default())
    }

    /// Loads a CLIP model with `options`. A directory holding another kind of model is
    /// [`EmbedError::UnsupportedArchitecture`] (inside [`ClipError::Model`]).
    pub fn load_with(spec: &str, options: ClipOptions) -> Result<Self, ClipError> {
        if options.batch_size == 0 {
            return Err(EmbedError::InvalidArgument("batch size 0".into()).into());
        }
        let dir = ModelDir::resolve(spec)?;
        let cfg = ClipConfig::load(&dir.require(CONFIG_FILE)?)?;
        let processor = ClipImageProcessor::load(dir.root())?;
        let side = cfg.vision.image_size as u32;
        let out = processor_output(&processor);
        if out != Some((side, side)) {
            return Err(EmbedError::bad_config(
                dir.root().join(PREPROCESSOR_CONFIG_FILE),
                format!(
                    "the processor produces {} images; the vision tower reads {side}x{side}",
                    out.map_or("variable-size".to_owned(), |(h, w)| format!("{w}x{h}"))
                ),
            )
            .into());
        }
        let tokenizer = TextTokenizer::load(
            &dir.require(TOKENIZER_FILE)?,
            cfg.text.max_position_embeddings,
        )?;
        let device = Device::Cpu;
        let w = Weights::load(&dir.require(WEIGHTS_FILE)?, &device)?;
        let p = cfg.projection_dim;
        let vision = VisionTower::load(&w, &cfg.vision, &device)?;
        let text = TextTower::load(&w, &cfg.text, &device)?;
        let visual_projection =
            Linear::load(&w, "visual_projection", cfg.vision.tower.hidden_size, p)?;
        let text_projection = Linear::load(&w, "text_projection", cfg.text.tower.hidden_size, p)?;
        let fingerprint = ModelFingerprint {
            model_id: dir.model_id(),
            weights_sha256: w.sha256().to_owned(),
            dim: p,
            pooling: None,
            normalize: options.normalize,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            plain_prefix: String::new(),
        };
        Ok(ClipModel {
            cfg,
            options,
            processor,
            tokenizer,
            vision,
            text,
            visual_projection,
            text_projection,
            fingerprint,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ClipConfig {
        &self.cfg
    }

    /// The options the model was loaded with.
    pub fn options(&self) -> ClipOptions {
        self.options
    }

    /// The image preprocessing.
    pub fn processor(&self) -> &ClipImageProcessor {
        &self.processor
    }

    /// The tokenizer (CLIP BPE, truncating to `max_position_embeddings` tokens with the
    /// end-of-text token kept).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Dimension of the shared space (`projection_dim`).
    pub fn dim(&self) -> usize {
        self.cfg.projection_dim
    }

    /// The fingerprint of the shared space (images and texts alike).
    pub fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    /// Token ids of `text` as the text tower reads them.
    pub fn tokenize(&self, text: &str) -> Result<Encoded, ClipError> {
        Ok(self.tokenizer.encode(text)?)
    }

    /// Embeds decoded images (converted to RGB with [`to_rgb`], then preprocessed).
    ///
    /// The result equals transformers' for the same pixels; whether the pixels equal
    /// Pillow's depends on the decoder: [`decode_image`] (and every bytes or file entry
    /// point) decodes JPEG exactly as Pillow does, the `image` crate's own JPEG decoder
    /// differs by a few levels.
    pub fn embed_images(&self, images: &[&DynamicImage]) -> Result<Embeddings, ClipError> {
        check_sizes(images.iter().map(|i| (i.width(), i.height())))?;
        let pixels: Vec<PixelValues> = images
            .par_iter()
            .map(|img| self.processor.preprocess(img))
            .collect();
        self.embed_pixel_values(&pixels.iter().collect::<Vec<_>>())
    }

    /// Embeds RGB images (as [`decode_rgb`] returns them).
    pub fn embed_rgb(&self, images: &[&RgbImage]) -> Result<Embeddings, ClipError> {
        check_sizes(images.iter().map(|i| (i.width(), i.height())))?;
        let pixels: Vec<PixelValues> = images
            .par_iter()
            .map(|img| self.processor.preprocess_rgb(img))
            .collect();
        self.embed_pixel_values(&pixels.iter().collect::<Vec<_>>())
    }

    /// Embeds encoded images (PNG, JPEG or WebP bytes, [`decode_rgb`]); the first one that
    /// does not decode is the error.
    pub fn embed_image_bytes(&self, images: &[&[u8]]) -> Result<Embeddings, ClipError> {
        let pixels = images
            .par_iter()
            .map(|b| Ok(self.processor.preprocess_rgb(&decode_rgb(b)?)))
            .collect::<Result<Vec<_>, ClipError>>()?;
        self.embed_pixel_values(&pixels.iter().collect::<Vec<_>>())
    }

    /// Embeds image files ([`open_rgb`]); errors name the file.
    pub fn embed_image_files(&self, paths: &[&Path]) -> Result<Embeddings, ClipError> {
        let pixels = paths
            .par_iter()
            .map(|p| Ok(self.processor.preprocess_rgb(&open_rgb(p)?)))
            .collect::<Result<Vec<_>, ClipError>>()?;
        self.embed_pixel_values(&pixels.iter().collect::<Vec<_>>())
    }

    /// Embeds preprocessed images (`[3, image_size, image_size]` each).
    pub fn embed_pixel_values(&self, pixels: &[&PixelValues]) -> Result<Embeddings, ClipError> {
        let mut data = Vec::with_capacity(pixels.len() * self.dim());
        for batch in pixels.chunks(self.options.batch_size) {
            let pooled = self.vision.forward(batch)?;
            self.project(&self.visual_projection, &pooled, &mut data)?;
        }
        Ok(Embeddings::new(self.dim(), data, 0))
    }

    /// Embeds texts; [`Embeddings::truncated`] counts those cut to the token limit.
    pub fn embed_texts(&self, texts: &[&str]) -> Result<Embeddings, ClipError> {
        Ok(self.text_embeddings(texts)?)
    }

    fn text_embeddings(&self, texts: &[&str]) -> Result<Embeddings, EmbedError> {
        let encoded = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let truncated = encoded.iter().filter(|e| e.truncated).count();
        let mut data = Vec::with_capacity(texts.len() * self.dim());
        for batch in encoded.chunks(self.options.batch_size) {
            let rows: Vec<&[u32]> = batch.iter().map(|e| e.ids.as_slice()).collect();
            let pooled = self.text.forward(&rows)?;
            self.project(&self.text_projection, &pooled, &mut data)?;
        }
        Ok(Embeddings::new(self.dim(), data, truncated))
    }

    /// Projects pooled states and appends the (optionally normalised) rows to `out`.
    fn project(
        &self,
        proj: &Linear,
        pooled: &Tensor,
        out: &mut Vec<f32>,
    ) -> Result<(), EmbedError> {
        let v = proj.forward(pooled)?.flatten_all()?.to_vec1::<f32>()?;
        for row in v.chunks_exact(self.dim()) {
            let start = out.len();
            out.extend_from_slice(row);
            if self.options.normalize {
                sextant_core::l2_normalize_in_place(&mut out[start..]);
            }
        }
        Ok(())
    }
}

/// Refuses images without pixels (Pillow cannot hold them, transformers cannot resize them).
fn check_sizes(mut sizes: impl Iterator<Item = (u32, u32)>) -> Result<(), ClipError> {
    match sizes.find(|&(w, h)| w == 0 || h == 0) {
        Some((w, h)) => Err(ClipError::InvalidImage {
            input: "an image".into(),
            reason: format!("the image is {w}x{h} pixels"),
        }),
        None => Ok(()),
    }
}

/// The fixed `(height, width)` the processor's output has, if it has one.
fn processor_output(p: &ClipImageProcessor) -> Option<(u32, u32)> {
    match (p.crop, p.resize) {
        (Some(c), _) => Some(c),
        (None, Some(ResizeTarget::Exact { height, width })) => Some((height, width)),
        _ => None,
    }
}

impl Embedder for ClipModel {
    fn dim(&self) -> usize {
        self.cfg.projection_dim
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    /// CLIP has no query/passage distinction: every kind embeds the text as it is.
    fn embed(&self, texts: &[&str], _kind: InputKind) -> Result<Embeddings, EmbedError> {
        self.text_embeddings(texts)
    }
}

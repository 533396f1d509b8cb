//! `CLIPImageProcessor`: RGB image in, normalised `[3, H, W]` pixel values out, bit for bit
//! what transformers' PIL backend (`CLIPImageProcessorPil`, the one that matches Pillow and
//! transformers 4) produces for the same Pillow image.
//!
//! The steps, in transformers' order, each a method so that tests can compare every
//! intermediate with the reference:
//!
//! 1. [`ClipImageProcessor::resize`]: the shortest edge to `size.shortest_edge`, the other edge
//!    to `int(shortest · long / short)` (truncated, in f64), with Pillow's resampler
//!    (see `resize`); or to a fixed `{height, width}`;
//! 2. [`ClipImageProcessor::center_crop`]: top and left offsets `(H − h) // 2`, `(W − w) // 2`,
//!    zero padding where the image is smaller (centred, an odd extra row or column before);
//! 3. [`ClipImageProcessor::pixel_values`]: rescale `f32(f64(v) · rescale_factor)`, normalise
//!    `(x − mean) / std` in f32, channels first.

use std::path::Path;

use image::{DynamicImage, RgbImage};
use serde::Deserialize;

use super::decode::to_rgb;
use super::resize::{resize_rgb, ResampleFilter};
use crate::config::read_json;
use crate::EmbedError;

/// The image processor's configuration file.
pub const PREPROCESSOR_CONFIG_FILE: &str = "preprocessor_config.json";
/// transformers 5's combined processor file, read when `preprocessor_config.json` is absent
/// (its `image_processor` object).
pub const PROCESSOR_CONFIG_FILE: &str = "processor_config.json";

/// OpenAI CLIP's per-channel mean (transformers' `OPENAI_CLIP_MEAN`), the default.
pub const OPENAI_CLIP_MEAN: [f64; 3] = [0.48145466, 0.4578275, 0.40821073];
/// OpenAI CLIP's per-channel standard deviation (`OPENAI_CLIP_STD`), the default.
pub const OPENAI_CLIP_STD: [f64; 3] = [0.26862954, 0.26130258, 0.27577711];
/// The default shortest edge and crop side.
pub const DEFAULT_CLIP_IMAGE_SIZE: u32 = 224;
/// The default `resample`: Pillow's `BICUBIC`.
pub const DEFAULT_RESAMPLE_CODE: u64 = 3;

/// How the resize step sizes its output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTarget {
    /// The shorter edge becomes this many pixels, the aspect ratio is kept (truncating).
    ShortestEdge(u32),
    /// This exact size.
    Exact {
        /// Output height.
        height: u32,
        /// Output width.
        width: u32,
    },
}

/// Normalised pixel values of one image: `[channels, height, width]`, row-major, f32.
#[derive(Debug, Clone, PartialEq)]
pub struct PixelValues {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `3 · height · width` values, channel R first.
    pub data: Vec<f32>,
}

/// CLIP's image preprocessing, configured from `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipImageProcessor {
    /// The resize step (`do_resize`, `size`), `None` when disabled.
    pub resize: Option<ResizeTarget>,
    /// The resampling filter (`resample`).
    pub filter: ResampleFilter,
    /// The centre crop `(height, width)` (`do_center_crop`, `crop_size`), `None` when disabled.
    pub crop: Option<(u32, u32)>,
    /// The rescale factor (`do_rescale`, `rescale_factor`), `None` when disabled.
    pub rescale: Option<f64>,
    /// Per-channel mean and standard deviation (`do_normalize`, `image_mean`, `image_std`),
    /// `None` when disabled.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

impl Default for ClipImageProcessor {
    /// transformers' `CLIPImageProcessor()` defaults.
    fn default() -> Self {
        ClipImageProcessor {
            resize: Some(ResizeTarget::ShortestEdge(DEFAULT_CLIP_IMAGE_SIZE)),
            filter: ResampleFilter::Bicubic,
            crop: Some((DEFAULT_CLIP_IMAGE_SIZE, DEFAULT_CLIP_IMAGE_SIZE)),
            rescale: Some(1.0 / 255.0),
            normalize: Some((
                OPENAI_CLIP_MEAN.map(|m| m as f32),
                OPENAI_CLIP_STD.map(|s| s as f32),
            )),
        }
    }
}

#[derive(Deserialize)]
struct File {
    image_processor_type: Option<String>,
    feature_extractor_type: Option<String>,
    #[serde(default = "yes")]
    do_resize: bool,
    size: Option<serde_json::Value>,
    resample: Option<u64>,
    #[serde(default = "yes")]
    do_center_crop: bool,
    crop_size: Option<serde_json::Value>,
    #[serde(default = "yes")]
    do_rescale: bool,
    rescale_factor: Option<f64>,
    #[serde(default = "yes")]
    do_normalize: bool,
    image_mean: Option<serde_json::Value>,
    image_std: Option<serde_json::Value>,
    #[serde(default = "yes")]
    do_convert_rgb: bool,
}

fn yes() -> bool {
    true
}

impl ClipImageProcessor {
    /// Reads `preprocessor_config.json` from a model directory, or the `image_processor`
    /// object of `processor_config.json` when only that exists.
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let pre = dir.join(PREPROCESSOR_CONFIG_FILE);
        if pre.is_file() {
            return Self::from_file(&pre);
        }
        let combined = dir.join(PROCESSOR_CONFIG_FILE);
        if combined.is_file() {
            let v: serde_json::Value = read_json(&combined)?;
            let inner = v
                .get("image_processor")
                .cloned()
                .ok_or_else(|| EmbedError::bad_config(&combined, "no image_processor object"))?;
            return Self::from_value(&combined, inner);
        }
        Err(EmbedError::MissingFile { path: pre })
    }

    /// Reads one image processor configuration file.
    pub fn from_file(path: &Path) -> Result<Self, EmbedError> {
        Self::from_value(path, read_json(path)?)
    }

    fn from_value(path: &Path, v: serde_json::Value) -> Result<Self, EmbedError> {
        let f: File = serde_json::from_value(v).map_err(|source| EmbedError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let bad = |reason: String| EmbedError::bad_config(path, reason);
        let kind = f.image_processor_type.or(f.feature_extractor_type);
        if let Some(k) = &kind {
            if !k.starts_with("CLIPImageProcessor") && k != "CLIPFeatureExtractor" {
                return Err(bad(format!(
                    "image processor {k:?} is not CLIPImageProcessor; its preprocessing is not \
                     implemented"
                )));
            }
        }
        if !f.do_convert_rgb {
            return Err(bad(
                "do_convert_rgb false is not supported (the vision tower reads RGB)".into(),
            ));
        }
        let resize = if f.do_resize {
            Some(match &f.size {
                None => ResizeTarget::ShortestEdge(DEFAULT_CLIP_IMAGE_SIZE),
                Some(s) => resize_target(s).ok_or_else(|| {
                    bad(format!(
                        "size {s} is not supported (use {{\"shortest_edge\": n}}, \
                         {{\"height\": h, \"width\": w}} or n)"
                    ))
                })?,
            })
        } else {
            None
        };
        let code = f.resample.unwrap_or(DEFAULT_RESAMPLE_CODE);
        let filter = ResampleFilter::from_pil_code(code).ok_or_else(|| {
            bad(format!(
                "resample {code} is not supported (Pillow's LANCZOS 1, BILINEAR 2, BICUBIC 3, \
                 BOX 4 and HAMMING 5 are)"
            ))
        })?;
        let crop = if f.do_center_crop {
            Some(match &f.crop_size {
                None => (DEFAULT_CLIP_IMAGE_SIZE, DEFAULT_CLIP_IMAGE_SIZE),
                Some(c) => crop_size(c).ok_or_else(|| {
                    bad(format!(
                        "crop_size {c} is not {{\"height\": h, \"width\": w}} or a number"
                    ))
                })?,
            })
        } else {
            None
        };
        let rescale = f
            .do_rescale
            .then(|| f.rescale_factor.unwrap_or(1.0 / 255.0));
        let normalize = if f.do_normalize {
            let mean = triple(f.image_mean.as_ref(), OPENAI_CLIP_MEAN)
                .ok_or_else(|| bad("image_mean is not one number or three".into()))?;
            let std = triple(f.image_std.as_ref(), OPENAI_CLIP_STD)
                .ok_or_else(|| bad("image_std is not one number or three".into()))?;
            if std.iter().any(|&s| s == 0.0 || !s.is_finite()) {
                return Err(bad(format!("image_std {std:?} has a zero")));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(ClipImageProcessor {
            resize,
            filter,
            crop,
            rescale,
            normalize,
        })
    }

    /// The size `(width, height)` the resize step gives an image of `width × height`.
    pub fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.resize {
            None => (width, height),
            Some(ResizeTarget::Exact { height, width }) => (width, height),
            Some(ResizeTarget::ShortestEdge(_)) if width == 0 || height == 0 => (0, 0),
            Some(ResizeTarget::ShortestEdge(size)) => {
                // transformers' get_resize_output_image_size(default_to_square=False).
                let (short, long) = if width <= height {
                    (width, height)
                } else {
                    (height, width)
                };
                let new_long = (f64::from(size) * f64::from(long) / f64::from(short)) as u32;
                if width <= height {
                    (size, new_long)
                } else {
                    (new_long, size)
                }
            }
        }
    }

    /// Step 1: Pillow-exact resize (a copy when the size does not change).
    pub fn resize(&self, img: &RgbImage) -> RgbImage {
        let (w, h) = self.resized_size(img.width(), img.height());
        resize_rgb(img, w, h, self.filter)
    }

    /// Step 2: centre crop, padding with zeros where the image is smaller than the crop.
    pub fn center_crop(&self, img: &RgbImage) -> RgbImage {
        let Some((ch, cw)) = self.crop else {
            return img.clone();
        };
        let (h, w) = (img.height() as usize, img.width() as usize);
        let (ch, cw) = (ch as usize, cw as usize);
        // Output row r reads input row r − shift (transformers' center_crop: floor offsets
        // when cropping, ceil padding before when padding).
        let shift = |have: usize, want: usize| -> isize {
            if have >= want {
                -(((have - want) / 2) as isize)
            } else {
                (want - have).div_ceil(2) as isize
            }
        };
        let (dy, dx) = (shift(h, ch), shift(w, cw));
        let src = img.as_raw();
        let mut out = vec![0u8; ch * cw * 3];
        for (r, row) in out.chunks_exact_mut(cw * 3).enumerate() {
            let y = r as isize - dy;
            if y < 0 || y >= h as isize {
                continue;
            }
            let line = &src[y as usize * w * 3..(y as usize + 1) * w * 3];
            for (c, px) in row.chunks_exact_mut(3).enumerate() {
                let x = c as isize - dx;
                if x >= 0 && x < w as isize {
                    px.copy_from_slice(&line[x as usize * 3..x as usize * 3 + 3]);
                }
            }
        }
        RgbImage::from_raw(cw as u32, ch as u32, out).expect("crop buffer of h·w·3 bytes")
    }

    /// Step 3: rescale and normalise, channels first.
    pub fn pixel_values(&self, img: &RgbImage) -> PixelValues {
        let (h, w) = (img.height() as usize, img.width() as usize);
        let plane = h * w;
        let mut data = vec![0f32; 3 * plane];
        for (i, px) in img.as_raw().chunks_exact(3).enumerate() {
            for (c, &v) in px.iter().enumerate() {
                let mut x = match self.rescale {
                    Some(s) => (f64::from(v) * s) as f32,
                    None => f32::from(v),
                };
                if let Some((mean, std)) = &self.normalize {
                    x = (x - mean[c]) / std[c];
                }
                data[c * plane + i] = x;
            }
        }
        PixelValues {
            height: h,
            width: w,
            data,
        }
    }

    /// The whole preprocessing of an RGB image.
    pub fn preprocess_rgb(&self, img: &RgbImage) -> PixelValues {
        let resized = self.resize(img);
        self.pixel_values(&self.center_crop(&resized))
    }

    /// The whole preprocessing of a decoded image: [`to_rgb`] (alpha over white, as
    /// transformers' `convert_to_rgb`), then [`ClipImageProcessor::preprocess_rgb`].
    pub fn preprocess(&self, img: &DynamicImage) -> PixelValues {
        match img {
            DynamicImage::ImageRgb8(rgb) => self.preprocess_rgb(rgb),
            other => self.preprocess_rgb(&to_rgb(other)),
        }
    }
}

fn resize_target(v: &serde_json::Value) -> Option<ResizeTarget> {
    let dim = |k: &str| -> Option<u32> {
        v.get(k)?
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
    };
    if let Some(n) = v.as_u64() {
        // A bare number means the shortest edge for CLIP (default_to_square=False).
        return u32::try_from(n)
            .ok()
            .filter(|&n| n > 0)
            .map(ResizeTarget::ShortestEdge);
    }
    let obj = v.as_object()?;
    let present = |k: &str| obj.get(k).is_some_and(|x| !x.is_null());
    if present("longest_edge") || present("max_height") || present("max_width") {
        return None;
    }
    if present("shortest_edge") {
        return dim("shortest_edge").map(ResizeTarget::ShortestEdge);
    }
    Some(ResizeTarget::Exact {
        height: dim("height")?,
        width: dim("width")?,
    })
}

fn crop_size(v: &serde_json::Value) -> Option<(u32, u32)> {
    let pos = |x: &serde_json::Value| -> Option<u32> {
        x.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|&n| n > 0)
    };
    if let Some(n) = pos(v) {
        return Some((n, n));
    }
    Some((pos(v.get("height")?)?, pos(v.get("width")?)?))
}

fn triple(v: Option<&serde_json::Value>, default: [f64; 3]) -> Option<[f32; 3]> {
    let Some(v) = v else {
        return Some(default.map(|x| x as f32));
    };
    if let Some(x) = v.as_f64() {
        return Some([x as f32; 3]);
    }
    let a = v.as_array()?;
    if a.len() != 3 {
        return None;
    }
    Some([
        a[0].as_f64()? as f32,
        a[1].as_f64()? as f32,
        a[2].as_f64()? as f32,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_edge_truncates() {
        let p = ClipImageProcessor::default();
        assert_eq!(p.resized_size(1600, 1203), (297, 224));
        assert_eq!(p.resized_size(24, 32), (224, 298));
        assert_eq!(p.resized_size(1, 1), (224, 224));
    }

    #[test]
    fn crop_pads_small_images_like_transformers() {
        let p = ClipImageProcessor {
            crop: Some((4, 5)),
            ..ClipImageProcessor::default()
        };
        // 2 rows, 2 columns of value 9: rows padded 1 before, 1 after; columns ceil(3/2) = 2
        // before, 1 after.
        let img = RgbImage::from_pixel(2, 2, image::Rgb([9, 9, 9]));
        let out = p.center_crop(&img);
        let red: Vec<Vec<u8>> = (0..4)
            .map(|y| (0..5).map(|x| out.get_pixel(x, y).0[0]).collect())
            .collect();
        assert_eq!(
            red,
            vec![
                vec![0; 5],
                vec![0, 0, 9, 9, 0],
                vec![0, 0, 9, 9, 0],
                vec![0; 5]
            ]
        );
        // Cropping floors: 7 → 4 starts at row 1.
        let img = RgbImage::from_fn(5, 7, |_, y| image::Rgb([y as u8; 3]));
        let out = p.center_crop(&img);
        assert_eq!(out.get_pixel(0, 0).0[0], 1);
    }

    #[test]
    fn old_style_numbers_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("preprocessor_config.json");
        std::fs::write(
            &p,
            r#"{"feature_extractor_type": "CLIPFeatureExtractor", "size": 224,
                "crop_size": 224, "resample": 3}"#,
        )
        .unwrap();
        let got = ClipImageProcessor::from_file(&p).unwrap();
        assert_eq!(got, ClipImageProcessor::default());
        std::fs::write(&p, r#"{"image_processor_type": "SiglipImageProcessor"}"#).unwrap();
        assert!(ClipImageProcessor::from_file(&p).is_err());
        std::fs::write(&p, r#"{"resample": 0}"#).unwrap();
        assert!(ClipImageProcessor::from_file(&p).is_err());
    }
}

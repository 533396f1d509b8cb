//! Pillow's convolution resampler (`libImaging/Resample.c`), reproduced byte for byte for
//! 8-bit images.
//!
//! CLIP checkpoints were trained on images that Pillow resized, and transformers' image
//! processor still resizes with `PIL.Image.resize`; a "close enough" bicubic (the `image`
//! crate's, or any textbook one) moves a sizeable fraction of the pixels by one or more
//! levels, which moves every embedding. So the algorithm is Pillow's, step for step:
//!
//! 1. per axis, `scale = in / out` and `filterscale = max(scale, 1)` (the filter widens when
//!    shrinking, which is Pillow's antialiasing); `support = filter_support · filterscale`;
//! 2. output index `i` reads the input span `[xmin, xmax)` with `center = (i + 0.5) · scale`,
//!    `xmin = max(trunc(center − support + 0.5), 0)`, `xmax = min(trunc(center + support +
//!    0.5), in)`, weights `filter((k + xmin − center + 0.5) / filterscale)` normalised to sum 1
//!    in f64;
//! 3. weights become 22-bit fixed point, rounded half away from zero; a pixel is
//!    `clamp((2²¹ + Σ v·w) >> 22, 0, 255)` with an arithmetic shift;
//! 4. the horizontal pass runs first, into an 8-bit intermediate holding only the rows the
//!    vertical pass reads, then the vertical pass; an axis whose size does not change is
//!    skipped (and an unchanged image is copied).

use image::RgbImage;

/// Fixed-point precision of the weights (`PRECISION_BITS` in Pillow: 32 − 8 − 2).
const PRECISION_BITS: u32 = 22;

/// Pillow's convolution filters, by their `resample` codes (`PIL.Image.Resampling`) as
/// `preprocessor_config.json` writes them. `NEAREST` (0) is not a convolution in Pillow and
/// is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResampleFilter {
    /// `LANCZOS` (1): windowed sinc, support 3.
    Lanczos,
    /// `BILINEAR` (2): triangle, support 1.
    Bilinear,
    /// `BICUBIC` (3): Keys cubic with `a = −0.5`, support 2 (CLIP's).
    Bicubic,
    /// `BOX` (4): support 0.5.
    Box,
    /// `HAMMING` (5): Hamming-windowed sinc, support 1.
    Hamming,
}

impl ResampleFilter {
    /// The filter of a Pillow `resample` code, `None` for `NEAREST` and unknown codes.
    pub fn from_pil_code(code: u64) -> Option<Self> {
        match code {
            1 => Some(ResampleFilter::Lanczos),
            2 => Some(ResampleFilter::Bilinear),
            3 => Some(ResampleFilter::Bicubic),
            4 => Some(ResampleFilter::Box),
            5 => Some(ResampleFilter::Hamming),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            ResampleFilter::Box => 0.5,
            ResampleFilter::Bilinear | ResampleFilter::Hamming => 1.0,
            ResampleFilter::Bicubic => 2.0,
            ResampleFilter::Lanczos => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            ResampleFilter::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            ResampleFilter::Bilinear => {
                let x = x.abs();
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            ResampleFilter::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            ResampleFilter::Bicubic => {
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            ResampleFilter::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// The fixed-point weights of one axis: output `i` reads `count[i]` inputs from `start[i]`
/// with the weights `weights[i · ksize ..]`.
#[derive(Debug)]
struct AxisCoeffs {
    ksize: usize,
    start: Vec<usize>,
    count: Vec<usize>,
    weights: Vec<i32>,
}

impl AxisCoeffs {
    /// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`.
    fn new(in_size: usize, out_size: usize, filter: ResampleFilter) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let mut start = Vec::with_capacity(out_size);
        let mut count = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * ksize];
        let mut k = vec![0f64; ksize];
        let ss = 1.0 / filterscale;
        for (i, row) in weights.chunks_exact_mut(ksize).enumerate() {
            let center = (i as f64 + 0.5) * scale;
            // `as` truncates toward zero, like C's (int) cast.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let n = (xmax - xmin).max(0) as usize;
            let mut total = 0.0;
            for (x, w) in k.iter_mut().enumerate().take(n) {
                *w = filter.eval(((x as i64 + xmin) as f64 - center + 0.5) * ss);
                total += *w;
            }
            for (w, fixed) in k.iter_mut().zip(row.iter_mut()).take(n) {
                if total != 0.0 {
                    *w /= total;
                }
                let scaled = *w * f64::from(1u32 << PRECISION_BITS);
                *fixed = if *w < 0.0 {
                    (scaled - 0.5) as i32
                } else {
                    (scaled + 0.5) as i32
                };
            }
            start.push(xmin as usize);
            count.push(n);
        }
        AxisCoeffs {
            ksize,
            start,
            count,
            weights,
        }
    }

    fn taps(&self, i: usize) -> (usize, &[i32]) {
        let w = &self.weights[i * self.ksize..i * self.ksize + self.count[i]];
        (self.start[i], w)
    }
}

/// Pillow's `clip8`: the rounded fixed-point sum as a byte.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// The rounding bias every sum starts from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes an RGB image exactly as `PIL.Image.resize((width, height), resample=filter)` does
/// (`reducing_gap=None`, the whole image as the box).
pub fn resize_rgb(src: &RgbImage, width: u32, height: u32, filter: ResampleFilter) -> RgbImage {
    let (in_w, in_h) = (src.width() as usize, src.height() as usize);
    let (out_w, out_h) = (width as usize, height as usize);
    let data = resample(src.as_raw(), in_w, in_h, out_w, out_h, 3, filter);
    RgbImage::from_raw(width, height, data).expect("resampled buffer of w·h·3 bytes")
}

/// The resampler on interleaved 8-bit pixels of `channels` samples.
fn resample(
    src: &[u8],
    in_w: usize,
    in_h: usize,
    out_w: usize,
    out_h: usize,
    channels: usize,
    filter: ResampleFilter,
) -> Vec<u8> {
    debug_assert_eq!(src.len(), in_w * in_h * channels);
    if out_w == 0 || out_h == 0 {
        return Vec::new();
    }
    if in_w == 0 || in_h == 0 {
        // Nothing to sample (Pillow refuses such images; callers reject them first).
        return vec![0; out_w * out_h * channels];
    }
    let need_h = out_w != in_w;
    let need_v = out_h != in_h;
    let vert = need_v.then(|| AxisCoeffs::new(in_h, out_h, filter));
    // The horizontal pass only produces the rows the vertical pass will read.
    let (first_row, last_row) = match &vert {
        Some(v) => (v.start[0], v.start[out_h - 1] + v.count[out_h - 1]),
        None => (0, in_h),
    };
    let horizontal;
    let (mid, mid_offset) = if need_h {
        let coeffs = AxisCoeffs::new(in_w, out_w, filter);
        horizontal = horizontal_pass(src, in_w, first_row..last_row, out_w, channels, &coeffs);
        (&horizontal[..], first_row)
    } else {
        (src, 0)
    };
    match vert {
        Some(coeffs) => vertical_pass(mid, mid_offset, out_w, out_h, channels, &coeffs),
        None => mid.to_vec(),
    }
}

fn horizontal_pass(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    out_w: usize,
    channels: usize,
    coeffs: &AxisCoeffs,
) -> Vec<u8> {
    let mut out = vec![0u8; rows.len() * out_w * channels];
    for (y, dst) in rows.zip(out.chunks_exact_mut(out_w * channels)) {
        let line = &src[y * in_w * channels..(y + 1) * in_w * channels];
        for (x, px) in dst.chunks_exact_mut(channels).enumerate() {
            let (xmin, w) = coeffs.taps(x);
            for (c, v) in px.iter_mut().enumerate() {
                let mut acc = HALF;
                for (k, &wk) in w.iter().enumerate() {
                    acc += i32::from(line[(xmin + k) * channels + c]) * wk;
                }
                *v = clip8(acc);
            }
        }
    }
    out
}

/// `src` holds rows `offset..` of the (horizontally resized) image, `width` pixels each.
fn vertical_pass(
    src: &[u8],
    offset: usize,
    width: usize,
    out_h: usize,
    channels: usize,
    coeffs: &AxisCoeffs,
) -> Vec<u8> {
    let stride = width * channels;
    let mut out = vec![0u8; out_h * stride];
    for (y, dst) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, w) = coeffs.taps(y);
        let ymin = ymin - offset;
        for (i, v) in dst.iter_mut().enumerate() {
            let mut acc = HALF;
            for (k, &wk) in w.iter().enumerate() {
                acc += i32::from(src[(ymin + k) * stride + i]) * wk;
            }
            *v = clip8(acc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for filter in [
            ResampleFilter::Bicubic,
            ResampleFilter::Bilinear,
            ResampleFilter::Lanczos,
            ResampleFilter::Box,
            ResampleFilter::Hamming,
        ] {
            for (inp, out) in [(1600, 297), (21, 224), (224, 224), (5, 3)] {
                let c = AxisCoeffs::new(inp, out, filter);
                for i in 0..out {
                    let (start, w) = c.taps(i);
                    assert!(start + w.len() <= inp);
                    let sum: i64 = w.iter().map(|&x| i64::from(x)).sum();
                    assert!(
                        (sum - (1 << 22)).abs() <= w.len() as i64,
                        "{filter:?} {sum}"
                    );
                }
            }
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        let src = RgbImage::from_pixel(37, 23, image::Rgb([200, 17, 0]));
        for (w, h) in [(224, 139), (10, 7), (37, 5), (3, 23)] {
            let out = resize_rgb(&src, w, h, ResampleFilter::Bicubic);
            assert!(out.pixels().all(|p| p.0 == [200, 17, 0]), "{w}x{h}");
        }
    }

    #[test]
    fn unchanged_size_is_a_copy() {
        let src = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8, y as u8, 9]));
        assert_eq!(resize_rgb(&src, 5, 4, ResampleFilter::Bicubic), src);
    }

    /// Values from `PIL.Image.resize` (Pillow 13.0.0) of the 4x1 greyscale-as-RGB ramp
    /// `[0, 100, 200, 255]`.
    #[test]
    fn matches_pillow_on_a_ramp() {
        let src = RgbImage::from_fn(4, 1, |x, _| {
            let v = [0u8, 100, 200, 255][x as usize];
            image::Rgb([v, v, v])
        });
        let row = |img: RgbImage| -> Vec<u8> { img.pixels().map(|p| p.0[0]).collect() };
        assert_eq!(
            row(resize_rgb(&src, 7, 1, ResampleFilter::Bicubic)),
            PIL_BICUBIC_7
        );
        assert_eq!(
            row(resize_rgb(&src, 3, 1, ResampleFilter::Bicubic)),
            PIL_BICUBIC_3
        );
    }

    const PIL_BICUBIC_7: [u8; 7] = [0, 26, 92, 153, 206, 242, 255];
    const PIL_BICUBIC_3: [u8; 3] = [19, 152, 247];
}

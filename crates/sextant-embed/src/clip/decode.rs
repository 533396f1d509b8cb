//! Decoding PNG, JPEG and WebP, and the conversion to 8-bit RGB that transformers applies
//! (`transformers.image_transforms.convert_to_rgb` on a Pillow image).
//!
//! PNG and WebP are decoded by the `image` crate (pure Rust: `png`, `image-webp`), whose
//! output equals Pillow's on every image tested (PNG and lossless WebP leave a decoder no
//! freedom; for lossy WebP, `image-webp` follows libwebp's upsampling and YUV → RGB). JPEG
//! is decoded by libjpeg-turbo's decoder, which Pillow uses (`jpeg`), because the Rust JPEG
//! decoders reconstruct differently.
//! What a CLIP model sees then depends on how the pixels become RGB, and there transformers
//! has Pillow's semantics, which we reproduce here rather than calling
//! `DynamicImage::to_rgb8`:
//!
//! - an alpha channel (RGBA, LA, a palette with `tRNS`) is composited over opaque white,
//!   `round((c·a + 255·(255 − a)) / 255)` per channel, i.e. `(c·a + 255·(255 − a) + 127) / 255`;
//! - 16-bit samples keep their high byte (`v >> 8`, Pillow's `;16B` raw modes), except 16-bit
//!   greyscale without alpha, which Pillow opens as `I;16` and *clips* to 255 on conversion;
//! - a `tRNS` colour key on a greyscale or truecolour PNG is compared the way Pillow compares
//!   it: against the 8-bit value of the pixel (so a 2- or 4-bit key other than 0, and a 16-bit
//!   RGB key, match only as Pillow lets them), a 1-bit key meaning "white" when non-zero;
//! - the EXIF orientation is *not* applied (transformers does not, for an image object), and
//!   ICC profiles are ignored (as by Pillow).
//!
//! The `tRNS` rules need the PNG header, which a [`DynamicImage`] does not carry: only
//! [`decode_rgb`] (bytes in) applies them; [`to_rgb`] (an already decoded image in) applies the
//! rest. Every rule was checked against Pillow 13 (see the unit tests).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageFormat, ImageReader, RgbImage};

use super::ClipError;

/// The image formats [`decode_image`] and [`decode_rgb`] accept.
pub const SUPPORTED_IMAGE_FORMATS: &str = "PNG, JPEG or WebP";

/// What an error says the input was when it came as bytes.
const BYTES_INPUT: &str = "image bytes";

/// Decodes PNG, JPEG or WebP bytes as stored (no EXIF rotation, no colour management).
///
/// Any other format is [`ClipError::UnsupportedImageFormat`], bytes that do not decode
/// [`ClipError::CorruptImage`]. For CLIP input prefer [`decode_rgb`], which also applies
/// Pillow's transparency rules for PNG colour keys.
pub fn decode_image(bytes: &[u8]) -> Result<DynamicImage, ClipError> {
    decode_named(bytes, BYTES_INPUT).map(|(img, _)| img)
}

/// Decodes PNG, JPEG or WebP bytes into the RGB image transformers' CLIP processor works on:
/// alpha composited over white, 16-bit reduced and PNG colour keys interpreted exactly as
/// Pillow does (see the module documentation).
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, ClipError> {
    decode_rgb_named(bytes, BYTES_INPUT)
}

/// Reads and decodes an image file ([`decode_rgb`]); errors name the file.
pub fn open_rgb(path: &Path) -> Result<RgbImage, ClipError> {
    let bytes = std::fs::read(path).map_err(|source| ClipError::ImageIo {
        path: path.to_path_buf(),
        source,
    })?;
    decode_rgb_named(&bytes, &path.display().to_string())
}

fn decode_rgb_named(bytes: &[u8], input: &str) -> Result<RgbImage, ClipError> {
    let (img, format) = decode_named(bytes, input)?;
    if format == ImageFormat::Png {
        if let Some(header) = PngHeader::scan(bytes) {
            if let Some(rgb) = png_to_rgb(&img, &header) {
                return Ok(rgb);
            }
        }
    }
    Ok(to_rgb(&img))
}

fn decode_named(bytes: &[u8], input: &str) -> Result<(DynamicImage, ImageFormat), ClipError> {
    let unsupported = |format: String| ClipError::UnsupportedImageFormat {
        input: input.to_owned(),
        format,
        supported: SUPPORTED_IMAGE_FORMATS,
    };
    let format = image::guess_format(bytes)
        .map_err(|_| unsupported("data without a known image signature".to_owned()))?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::WebP
    ) {
        return Err(unsupported(format!("{format:?}")));
    }
    let corrupt = |source| ClipError::CorruptImage {
        input: input.to_owned(),
        source,
    };
    let img = if format == ImageFormat::Jpeg {
        super::jpeg::decode(bytes).map_err(|e| {
            corrupt(image::ImageError::Decoding(
                image::error::DecodingError::new(
                    image::error::ImageFormatHint::Exact(ImageFormat::Jpeg),
                    e,
                ),
            ))
        })?
    } else {
        ImageReader::with_format(Cursor::new(bytes), format)
            .decode()
            .map_err(corrupt)?
    };
    if img.width() == 0 || img.height() == 0 {
        return Err(ClipError::InvalidImage {
            input: input.to_owned(),
            reason: format!("the image is {}x{} pixels", img.width(), img.height()),
        });
    }
    Ok((img, format))
}

/// Pillow's "alpha composite over opaque white" of one 8-bit sample.
#[inline]
fn over_white(c: u8, a: u8) -> u8 {
    let (c, a) = (u32::from(c), u32::from(a));
    ((c * a + 255 * (255 - a) + 127) / 255) as u8
}

/// The high byte of a 16-bit sample.
#[inline]
fn hi(v: u16) -> u8 {
    (v >> 8) as u8
}

/// Builds an RGB image from a per-pixel function of the source index.
fn rgb_from(w: u32, h: u32, mut px: impl FnMut(usize) -> [u8; 3]) -> RgbImage {
    let n = w as usize * h as usize;
    let mut out = Vec::with_capacity(n * 3);
    for i in 0..n {
        out.extend_from_slice(&px(i));
    }
    RgbImage::from_raw(w, h, out).expect("buffer of w·h·3 bytes")
}

/// Converts a decoded image to 8-bit RGB as transformers' `convert_to_rgb` converts the Pillow
/// image of the same pixels: alpha over white, 16-bit samples by their high byte, 16-bit grey
/// (Pillow's `I;16`) clipped to 255. Float images (not produced by the PNG, JPEG and WebP
/// decoders) are converted by the `image` crate and then composited.
pub fn to_rgb(img: &DynamicImage) -> RgbImage {
    let (w, h) = (img.width(), img.height());
    match img {
        DynamicImage::ImageRgb8(rgb) => rgb.clone(),
        DynamicImage::ImageLuma8(g) => {
            let g = g.as_raw();
            rgb_from(w, h, |i| [g[i]; 3])
        }
        DynamicImage::ImageLumaA8(la) => {
            let la = la.as_raw();
            rgb_from(w, h, |i| [over_white(la[2 * i], la[2 * i + 1]); 3])
        }
        DynamicImage::ImageRgba8(rgba) => {
            let p = rgba.as_raw();
            rgb_from(w, h, |i| {
                let a = p[4 * i + 3];
                [
                    over_white(p[4 * i], a),
                    over_white(p[4 * i + 1], a),
                    over_white(p[4 * i + 2], a),
                ]
            })
        }
        DynamicImage::ImageLuma16(g) => {
            let g = g.as_raw();
            rgb_from(w, h, |i| [g[i].min(255) as u8; 3])
        }
        DynamicImage::ImageLumaA16(la) => {
            let la = la.as_raw();
            rgb_from(w, h, |i| [over_white(hi(la[2 * i]), hi(la[2 * i + 1])); 3])
        }
        DynamicImage::ImageRgb16(rgb) => {
            let p = rgb.as_raw();
            rgb_from(w, h, |i| [hi(p[3 * i]), hi(p[3 * i + 1]), hi(p[3 * i + 2])])
        }
        DynamicImage::ImageRgba16(rgba) => {
            let p = rgba.as_raw();
            rgb_from(w, h, |i| {
                let a = hi(p[4 * i + 3]);
                [
                    over_white(hi(p[4 * i]), a),
                    over_white(hi(p[4 * i + 1]), a),
                    over_white(hi(p[4 * i + 2]), a),
                ]
            })
        }
        other => {
            let rgba = other.to_rgba8();
            to_rgb(&DynamicImage::ImageRgba8(rgba))
        }
    }
}

/// What Pillow reads from a PNG's header chunks that the `image` crate does not report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PngHeader {
    bit_depth: u8,
    color_type: u8,
    /// The raw `tRNS` chunk, if any.
    trns: Option<Vec<u8>>,
}

impl PngHeader {
    /// Reads IHDR and any `tRNS` before the first IDAT; `None` when the chunk layout is
    /// malformed (the decoder has accepted the file, so this does not happen in practice).
    fn scan(bytes: &[u8]) -> Option<Self> {
        let mut pos = 8;
        let mut header: Option<PngHeader> = None;
        while pos + 8 <= bytes.len() {
            let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().ok()?) as usize;
            let kind = &bytes[pos + 4..pos + 8];
            let data = bytes.get(pos + 8..(pos + 8).checked_add(len)?)?;
            match kind {
                b"IHDR" if data.len() >= 10 => {
                    header = Some(PngHeader {
                        bit_depth: data[8],
                        color_type: data[9],
                        trns: None,
                    });
                }
                b"tRNS" => header.as_mut()?.trns = Some(data.to_vec()),
                b"IDAT" | b"IEND" => break,
                _ => {}
            }
            pos += 12 + len;
        }
        header
    }
}

/// PNG greyscale and truecolour images whose Pillow conversion differs from [`to_rgb`] of the
/// decoded pixels: those with a `tRNS` colour key, which the `png` crate expands into an
/// alpha channel by comparing raw samples while Pillow compares 8-bit values. `None` means
/// [`to_rgb`] is exact.
fn png_to_rgb(img: &DynamicImage, header: &PngHeader) -> Option<RgbImage> {
    let trns = header.trns.as_deref()?;
    let key = |k: usize| -> Option<u16> {
        Some(u16::from_be_bytes(
            trns.get(2 * k..2 * k + 2)?.try_into().ok()?,
        ))
    };
    let (w, h) = (img.width(), img.height());
    match (header.color_type, img) {
        (0, DynamicImage::ImageLumaA8(la)) => {
            // Pillow mode "1" stores the key as 255 when non-zero; "L" keeps it as is (so a
            // 2- or 4-bit key matches only the 8-bit value it equals).
            let t = key(0)?;
            let t = if header.bit_depth == 1 && t != 0 {
                255
            } else {
                t
            };
            let la = la.as_raw();
            Some(rgb_from(w, h, |i| {
                let g = la[2 * i];
                [if u16::from(g) == t { 255 } else { g }; 3]
            }))
        }
        (0, DynamicImage::ImageLumaA16(la)) => {
            // "I;16": clipped to 8 bits, then compared.
            let t = key(0)?;
            let la = la.as_raw();
            Some(rgb_from(w, h, |i| {
                let g = la[2 * i].min(255);
                [if g == t { 255 } else { g as u8 }; 3]
            }))
        }
        (2, DynamicImage::ImageRgba8(rgba)) => {
            let t = [key(0)?, key(1)?, key(2)?];
            let p = rgba.as_raw();
            Some(rgb_from(w, h, |i| {
                let c = [p[4 * i], p[4 * i + 1], p[4 * i + 2]];
                if c.map(u16::from) == t {
                    [255; 3]
                } else {
                    c
                }
            }))
        }
        (2, DynamicImage::ImageRgba16(rgba)) => {
            // "RGB;16B" keeps the high bytes; the 16-bit key is compared with them.
            let t = [key(0)?, key(1)?, key(2)?];
            let p = rgba.as_raw();
            Some(rgb_from(w, h, |i| {
                let c = [hi(p[4 * i]), hi(p[4 * i + 1]), hi(p[4 * i + 2])];
                if c.map(u16::from) == t {
                    [255; 3]
                } else {
                    c
                }
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        let mut h = crc32fast::Hasher::new();
        h.update(kind);
        h.update(data);
        c.extend_from_slice(&h.finalize().to_be_bytes());
        c
    }

    /// A one-row PNG (filter 0) with the given colour type, depth, packed row and extra chunks.
    fn png(width: u32, color_type: u8, depth: u8, row: &[u8], extra: &[u8]) -> Vec<u8> {
        let mut ihdr = width.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&1u32.to_be_bytes());
        ihdr.extend_from_slice(&[depth, color_type, 0, 0, 0]);
        let mut raw = vec![0u8];
        raw.extend_from_slice(row);
        // A stored (uncompressed) deflate block in a zlib stream.
        let mut z = vec![0x78, 0x01, 0x01];
        z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
        z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
        z.extend_from_slice(&raw);
        z.extend_from_slice(&adler32(&raw).to_be_bytes());
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        out.extend(chunk(b"IHDR", &ihdr));
        out.extend_from_slice(extra);
        out.extend(chunk(b"IDAT", &z));
        out.extend(chunk(b"IEND", &[]));
        out
    }

    fn adler32(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &d in data {
            a = (a + u32::from(d)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    fn be16(vals: &[u16]) -> Vec<u8> {
        vals.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    fn reds(bytes: &[u8]) -> Vec<u8> {
        decode_rgb(bytes)
            .unwrap()
            .as_raw()
            .chunks(3)
            .map(|p| p[0])
            .collect()
    }

    // Expected values below are what transformers' convert_to_rgb returned for the same PNG
    // bytes under Pillow 13.0.0.

    #[test]
    fn grey16_is_clipped_not_shifted() {
        let row = be16(&[0, 255, 256, 1000, 65535, 40000]);
        assert_eq!(
            reds(&png(6, 0, 16, &row, &[])),
            [0, 255, 255, 255, 255, 255]
        );
        let row = be16(&[0, 200, 256, 1000]);
        let key = chunk(b"tRNS", &be16(&[200]));
        assert_eq!(reds(&png(4, 0, 16, &row, &key)), [0, 255, 255, 255]);
        let key = chunk(b"tRNS", &be16(&[0]));
        assert_eq!(reds(&png(4, 0, 16, &row, &key)), [255, 200, 255, 255]);
    }

    #[test]
    fn la16_and_rgb16_keep_the_high_byte() {
        let vals = [0u16, 255, 256, 1000, 0x80ff, 65535];
        let la: Vec<u16> = vals.iter().flat_map(|&v| [v, 0x8000 + v / 2]).collect();
        assert_eq!(
            reds(&png(6, 4, 16, &be16(&la), &[])),
            [127, 127, 128, 128, 159, 255]
        );
        let rgb: Vec<u16> = vals.iter().flat_map(|&v| [v; 3]).collect();
        assert_eq!(
            reds(&png(6, 2, 16, &be16(&rgb), &[])),
            [0, 0, 1, 3, 128, 255]
        );
    }

    #[test]
    fn rgb16_colour_key_is_compared_with_high_bytes() {
        let px = [
            [3u16, 3, 3],
            [768, 800, 1023],
            [1000, 1000, 1000],
            [0, 0, 0],
        ];
        let row = be16(&px.concat());
        for (key, want) in [
            ([3u16, 3, 3], [0u8, 255, 255, 0]),
            ([1000, 1000, 1000], [0, 3, 3, 0]),
            ([0, 0, 0], [255, 3, 3, 255]),
        ] {
            let k = chunk(b"tRNS", &be16(&key));
            assert_eq!(reds(&png(4, 2, 16, &row, &k)), want, "key {key:?}");
        }
    }

    #[test]
    fn low_depth_grey_keys_match_8_bit_values() {
        // 2-bit 0,1,2,3 → 0,85,170,255: only key 0 matches anything.
        let row = [0b0001_1011];
        for (key, want) in [
            (0u16, [255u8, 85, 170, 255]),
            (1, [0, 85, 170, 255]),
            (3, [0, 85, 170, 255]),
        ] {
            let k = chunk(b"tRNS", &be16(&[key]));
            assert_eq!(reds(&png(4, 0, 2, &row, &k)), want, "2-bit key {key}");
        }
        // 4-bit 0,15,1,0 → 0,255,17,0.
        let row = [0x0f, 0x10];
        for (key, want) in [
            (0u16, [255u8, 255, 17, 255]),
            (1, [0, 255, 17, 0]),
            (15, [0, 255, 17, 0]),
        ] {
            let k = chunk(b"tRNS", &be16(&[key]));
            assert_eq!(reds(&png(4, 0, 4, &row, &k)), want, "4-bit key {key}");
        }
        // 1-bit 1,0,1,0: key 0 makes black white; key 1 whitens white.
        let row = [0b1010_0000];
        assert_eq!(reds(&png(4, 0, 1, &row, &[])), [255, 0, 255, 0]);
        for (key, want) in [(1u16, [255u8, 0, 255, 0]), (0, [255, 255, 255, 255])] {
            let k = chunk(b"tRNS", &be16(&[key]));
            assert_eq!(reds(&png(4, 0, 1, &row, &k)), want, "1-bit key {key}");
        }
        // 8-bit grey and RGB keys match exactly.
        let k = chunk(b"tRNS", &be16(&[7]));
        assert_eq!(reds(&png(3, 0, 8, &[0, 7, 255], &k)), [0, 255, 255]);
        let k = chunk(b"tRNS", &be16(&[10, 20, 30]));
        let rgb = decode_rgb(&png(3, 2, 8, &[0, 0, 0, 10, 20, 30, 200, 100, 50], &k)).unwrap();
        assert_eq!(rgb.as_raw(), &[0, 0, 0, 255, 255, 255, 200, 100, 50]);
    }

    #[test]
    fn alpha_composite_rounds_like_pillow() {
        assert_eq!(over_white(0, 0), 255);
        assert_eq!(over_white(200, 255), 200);
        assert_eq!(over_white(0, 128), 127);
        assert_eq!(over_white(10, 1), 254);
    }

    #[test]
    fn a_jpeg_libjpeg_refuses_is_corrupt_and_says_why() {
        // An SOF9 (arithmetic coding, which is decoded) header of an 8x8 greyscale image
        // without any scan.
        let arith = [
            0xFF, 0xD8, 0xFF, 0xC9, 0x00, 0x0B, 0x08, 0x00, 0x08, 0x00, 0x08, 0x01, 0x01, 0x11,
            0x00, 0xFF, 0xD9,
        ];
        let e = decode_rgb(&arith).unwrap_err();
        assert!(matches!(&e, ClipError::CorruptImage { .. }), "{e:?}");
        assert!(e.is_input_error());
        // libjpeg's own reason is in the message.
        assert!(e.to_string().contains("JPEG: "), "{e}");
    }

    #[test]
    fn unsupported_and_corrupt_inputs_are_errors() {
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;";
        let e = decode_rgb(gif).unwrap_err();
        assert!(
            matches!(&e, ClipError::UnsupportedImageFormat { format, .. } if format == "Gif"),
            "{e}"
        );
        assert!(e.is_input_error());
        let e = decode_rgb(b"not an image at all").unwrap_err();
        assert!(matches!(e, ClipError::UnsupportedImageFormat { .. }), "{e}");
        let mut broken = png(2, 0, 8, &[1, 2], &[]);
        broken.truncate(40);
        let e = decode_rgb(&broken).unwrap_err();
        assert!(matches!(e, ClipError::CorruptImage { .. }), "{e}");
    }
}

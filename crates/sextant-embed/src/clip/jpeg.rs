//! JPEG through libjpeg-turbo's decoder, with the settings and colour rules of Pillow.
//!
//! JPEG leaves a decoder freedom in the inverse DCT, the chroma upsampling and the colour
//! conversion, and decoders use it: `zune-jpeg` (the `image` crate's) and `jpeg-decoder` differ
//! from Pillow by a level or more on most photographs, enough to move a CLIP embedding. Pillow
//! decodes with libjpeg-turbo, so we do too: the `mozjpeg` crate builds its decoder (mozjpeg is
//! libjpeg-turbo with a different encoder) from source with the C compiler alone, SIMD when
//! `nasm` is on the build machine. Pillow's choices, repeated here: the default "islow" integer
//! IDCT and fancy upsampling; one component → greyscale; three → RGB (libjpeg converts YCbCr
//! and recognises Adobe RGB); four → CMYK, inverted when an Adobe APP14 marker is present
//! (Pillow's `CMYK;I`), then turned into RGB with Pillow's `cmyk2rgb`. A file that ends early is
//! an error (Pillow: "image file is truncated"); other libjpeg warnings are ignored, as Pillow
//! ignores them.
//!
//! `unsafe` here is confined to libjpeg's error-manager callbacks, the only part of the
//! `mozjpeg` API that is C's.
#![allow(unsafe_code)]

use std::panic::{self, AssertUnwindSafe};

use image::{DynamicImage, GrayImage, RgbImage};
use mozjpeg::{Decompress, Marker};
use mozjpeg_sys::{jpeg_common_struct, jpeg_error_mgr, jpeg_std_error, J_COLOR_SPACE};

/// The largest image we decode, in pixels: Pillow's decompression-bomb limit
/// (`2 · Image.MAX_IMAGE_PIXELS`).
pub(crate) const MAX_PIXELS: u64 = 2 * 89_478_485;

/// libjpeg's warning "Premature end of JPEG file".
const JWRN_JPEG_EOF: i32 = mozjpeg_sys::JWRN_JPEG_EOF;

/// A JPEG that libjpeg refuses, with its message.
#[derive(Debug, thiserror::Error)]
#[error("JPEG: {0}")]
pub(crate) struct JpegError(String);

/// libjpeg reports a fatal error by calling `error_exit`, which must not return: we unwind
/// to [`decode`]'s `catch_unwind` with the formatted message (`resume_unwind` runs no panic
/// hook, so nothing is printed). The C code is built with unwinding support for this.
extern "C-unwind" fn error_exit(cinfo: &mut jpeg_common_struct) {
    panic::resume_unwind(Box::new(message(cinfo)));
}

/// Warnings (`level` −1) are ignored like Pillow ignores them, except a premature end of
/// data, which is an error; trace messages (`level` ≥ 0) are ignored.
extern "C-unwind" fn emit_message(cinfo: &mut jpeg_common_struct, level: i32) {
    // SAFETY: libjpeg calls this with the cinfo whose `err` we installed, valid for the call.
    let code = unsafe { cinfo.err.as_ref().map_or(0, |e| e.msg_code) };
    if level < 0 && code == JWRN_JPEG_EOF {
        panic::resume_unwind(Box::new("the file is truncated".to_owned()));
    }
}

/// libjpeg's text for the current message code.
fn message(cinfo: &mut jpeg_common_struct) -> String {
    let mut buf = [0u8; 200]; // JMSG_LENGTH_MAX
                              // SAFETY: `err` is the manager we installed; `format_message` writes at most
                              // JMSG_LENGTH_MAX (200) bytes including the terminating NUL.
    unsafe {
        let format = cinfo.err.as_ref().and_then(|e| e.format_message);
        match format {
            Some(f) => {
                // The binding declares the buffer as `&[u8; 80]`; libjpeg writes up to 200
                // bytes into it, so we pass our own 200-byte buffer by pointer.
                let f = std::mem::transmute::<
                    unsafe extern "C-unwind" fn(&mut jpeg_common_struct, &[u8; 80]),
                    unsafe extern "C-unwind" fn(&mut jpeg_common_struct, *mut u8),
                >(f);
                f(cinfo, buf.as_mut_ptr());
            }
            None => return "libjpeg error".to_owned(),
        }
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

fn error_manager() -> jpeg_error_mgr {
    // SAFETY: an all-zero jpeg_error_mgr is valid input to jpeg_std_error, which fills it.
    let mut err: jpeg_error_mgr = unsafe { std::mem::zeroed() };
    unsafe { jpeg_std_error(&mut err) };
    err.error_exit = Some(error_exit);
    err.emit_message = Some(emit_message);
    err
}

/// Decodes JPEG bytes as Pillow's `Image.open(...).convert("RGB")` (or `"L"` for greyscale)
/// sees them.
pub(crate) fn decode(bytes: &[u8]) -> Result<DynamicImage, JpegError> {
    match panic::catch_unwind(AssertUnwindSafe(|| decode_inner(bytes))) {
        Ok(result) => result,
        Err(payload) => Err(JpegError(
            payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "libjpeg failed".to_owned()),
        )),
    }
}

fn decode_inner(bytes: &[u8]) -> Result<DynamicImage, JpegError> {
    let io = |e: std::io::Error| JpegError(e.to_string());
    let dec = Decompress::with_err(error_manager())
        .with_markers(&[Marker::APP(14)])
        .from_mem(bytes)
        .map_err(io)?;
    let (w, h) = dec.size();
    if w == 0 || h == 0 {
        return Err(JpegError(format!("the image is {w}x{h} pixels")));
    }
    if (w as u64) * (h as u64) > MAX_PIXELS {
        return Err(JpegError(format!(
            "{w}x{h} pixels is over the decompression-bomb limit of {MAX_PIXELS}"
        )));
    }
    let adobe = dec
        .markers()
        .any(|m| m.marker == Marker::APP(14) && m.data.starts_with(b"Adobe"));
    let (w32, h32) = (w as u32, h as u32);
    let channels = dec.components().len();
    let image = match channels {
        1 => {
            let mut started = dec.grayscale().map_err(io)?;
            let px: Vec<u8> = started.read_scanlines().map_err(io)?;
            started.finish().map_err(io)?;
            DynamicImage::ImageLuma8(GrayImage::from_raw(w32, h32, px).ok_or_else(short)?)
        }
        3 => {
            let mut started = dec.rgb().map_err(io)?;
            let px: Vec<u8> = started.read_scanlines().map_err(io)?;
            started.finish().map_err(io)?;
            DynamicImage::ImageRgb8(RgbImage::from_raw(w32, h32, px).ok_or_else(short)?)
        }
        4 => {
            let mut started = dec.to_colorspace(J_COLOR_SPACE::JCS_CMYK).map_err(io)?;
            let mut px: Vec<u8> = started.read_scanlines().map_err(io)?;
            started.finish().map_err(io)?;
            if adobe {
                px.iter_mut().for_each(|v| *v = !*v);
            }
            DynamicImage::ImageRgb8(
                RgbImage::from_raw(w32, h32, cmyk_to_rgb(&px)).ok_or_else(short)?,
            )
        }
        n => return Err(JpegError(format!("{n} colour components"))),
    };
    Ok(image)
}

fn short() -> JpegError {
    JpegError("fewer pixels than the header declares".to_owned())
}

/// `round(a · b / 255)` for bytes, in Pillow's integer form.
fn mul_div_255(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// Pillow's CMYK → RGB: each channel `(255 − k) − c·(255 − k)/255`, no colour management.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let nk = 255 - p[3];
        out.extend(p[..3].iter().map(|&c| nk - mul_div_255(c, nk)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmyk_conversion_is_pillows() {
        // (c, m, y, k) → Pillow 13's convert("RGB") of the same CMYK pixel.
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 0]), [255, 255, 255]);
        assert_eq!(cmyk_to_rgb(&[255, 255, 255, 0]), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[0, 0, 0, 255]), [0, 0, 0]);
        assert_eq!(cmyk_to_rgb(&[128, 64, 10, 100]), [77, 116, 149]);
    }

    #[test]
    fn garbage_and_truncation_are_errors() {
        assert!(decode(b"\xFF\xD8\xFF").is_err());
        assert!(decode(b"not a jpeg").is_err());
    }
}

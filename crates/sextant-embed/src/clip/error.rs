//! The error type of the CLIP layer: the model errors of the crate ([`EmbedError`]) plus what
//! can go wrong with an image.
//!
//! Image problems are the caller's (a corrupt upload, a GIF where PNG, JPEG or WebP is
//! expected); model problems are the operator's (a directory that is not CLIP, a missing
//! tensor). [`ClipError::is_input_error`] tells them apart so that a front end can answer
//! "bad request" without parsing messages.

use std::path::PathBuf;

use crate::EmbedError;

/// Everything that can go wrong while loading a CLIP model or embedding with it.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// Loading or running the model failed (missing files, a directory that is not a CLIP
    /// model, a tokenizer error, ...).
    #[error(transparent)]
    Model(#[from] EmbedError),

    /// An image file could not be read.
    #[error("cannot read image {path}")]
    ImageIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a PNG, JPEG or WebP image.
    #[error("{input}: {format} is not a supported image format (CLIP inputs may be {supported})")]
    UnsupportedImageFormat {
        /// The file, or "image bytes".
        input: String,
        /// The detected format, or a note that none was recognised.
        format: String,
        /// The formats that are decoded.
        supported: &'static str,
    },

    /// The bytes look like a supported format but do not decode.
    #[error("{input}: the image cannot be decoded: {source}")]
    CorruptImage {
        /// The file, or "image bytes".
        input: String,
        /// The decoder's error.
        #[source]
        source: image::ImageError,
    },

    /// The image has a width or height of zero, or a pixel layout we cannot convert to RGB.
    #[error("{input}: {reason}")]
    InvalidImage {
        /// The file, or "image bytes".
        input: String,
        /// What is wrong.
        reason: String,
    },
}

impl ClipError {
    /// Whether the error is about the input (an image or a text) rather than the model or the
    /// machine: what an HTTP front end answers with 400 instead of 500.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            ClipError::UnsupportedImageFormat { .. }
                | ClipError::CorruptImage { .. }
                | ClipError::InvalidImage { .. }
        )
    }
}

//! The service's error: a kind every front end maps exhaustively (exit code, HTTP status,
//! exception class), the request field it is about when there is one, and a message.
//!
//! An engine error keeps its variant (see [`Error::engine`]) and its `#[source]` chain: the
//! message is the engine error's own text and [`std::error::Error::source`] continues below
//! it, so a chain printed as `a: b: c` never says a thing twice. [`Error::public_message`] is
//! what may be shown to a remote client: an internal error's detail (paths, I/O errors) stays
//! in the logs.

use std::fmt;

use sextant_core::ErrorKind;
use sextant_engine::EngineError;

/// What an internal error says to a remote client.
pub const INTERNAL_PUBLIC_MESSAGE: &str = "internal error; the server log has the details";

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// An error of the service layer (one pointer wide, so `Result`s stay small).
pub struct Error {
    inner: Box<Inner>,
}

struct Inner {
    kind: ErrorKind,
    field: Option<String>,
    message: String,
    cause: Cause,
}

enum Cause {
    None,
    /// The engine error whose text is the message (its sources follow it).
    Engine(EngineError),
    /// Another error below the message.
    Other(BoxError),
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            inner: Box::new(Inner {
                kind,
                field: None,
                message: message.into(),
                cause: Cause::None,
            }),
        }
    }

    /// Invalid input naming the request field (`mode`, `weights`, `line 3: id`, …).
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message).with_field(field)
    }

    /// A named thing does not exist.
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, message)
    }

    /// The request conflicts with the data's state (settings fixed at creation, say).
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Conflict, message)
    }

    /// An internal failure (I/O, a bug): `message` says what was being done, `source` why it
    /// failed.
    pub fn internal(
        message: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Error::new(ErrorKind::Internal, message).with_source(source)
    }

    /// Sets the request field the error is about.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.inner.field = Some(field.into());
        self
    }

    /// Sets the error below this one.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        self.inner.cause = Cause::Other(source.into());
        self
    }

    /// Puts what was being done before the message (`ingesting a.md: …`).
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.inner.message = format!("{what}: {}", self.inner.message);
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.inner.kind
    }

    /// The request field the error is about, when it names one.
    pub fn field(&self) -> Option<&str> {
        self.inner.field.as_deref()
    }

    /// The full message (may hold internal detail: for logs and the local CLI).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// What a remote client may be told: the message, except for internal errors, whose detail
    /// is replaced by [`INTERNAL_PUBLIC_MESSAGE`].
    pub fn public_message(&self) -> &str {
        match self.inner.kind {
            ErrorKind::Internal => INTERNAL_PUBLIC_MESSAGE,
            ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::InvalidInput
            | ErrorKind::Conflict
            | ErrorKind::Unauthorized
            | ErrorKind::Forbidden
            | ErrorKind::Overloaded => &self.inner.message,
        }
    }

    /// The engine error this one wraps, if any.
    pub fn engine(&self) -> Option<&EngineError> {
        match &self.inner.cause {
            Cause::Engine(e) => Some(e),
            Cause::None | Cause::Other(_) => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.inner.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.inner.kind)
            .field("field", &self.inner.field)
            .field("message", &self.inner.message);
        match &self.inner.cause {
            Cause::None => {}
            Cause::Engine(e) => {
                d.field("engine", e);
            }
            Cause::Other(e) => {
                d.field("source", e);
            }
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.cause {
            Cause::None => None,
            // The engine error's text is the message: the chain goes on below it.
            Cause::Engine(e) => e.source(),
            Cause::Other(e) => Some(e.as_ref()),
        }
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        Error {
            inner: Box::new(Inner {
                kind: e.kind(),
                field: e.field().map(str::to_string),
                message: e.to_string(),
                cause: Cause::Engine(e),
            }),
        }
    }
}

/// A model that cannot be read, or a computation on it that failed: invalid input naming the
/// model (the message says which file or tensor).
impl From<sextant_embed::EmbedError> for Error {
    fn from(e: sextant_embed::EmbedError) -> Self {
        Error::invalid("model", e.to_string()).with_source(e)
    }
}

impl From<sextant_core::FilterError> for Error {
    fn from(e: sextant_core::FilterError) -> Self {
        Error::from(EngineError::Filter(e)).with_field("filter")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn engine_errors_keep_their_kind_field_and_variant() {
        let e: Error = EngineError::CollectionNotFound("c".into()).into();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(matches!(
            e.engine(),
            Some(EngineError::CollectionNotFound(_))
        ));
        let e: Error = EngineError::invalid("k", "must be at least 1".into()).into();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("k"));
        assert_eq!(e.to_string(), "invalid k: must be at least 1");
        let e: Error = EngineError::Conflict("another model".into()).into();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        let e: Error = EngineError::NameTaken("c".into()).into();
        assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    }

    #[test]
    fn an_internal_error_shows_no_detail_publicly_but_keeps_its_chain() {
        let io = std::io::Error::other("disk on fire at /secret/path");
        let e = Error::internal("writing the manifest", io);
        assert_eq!(e.kind(), ErrorKind::Internal);
        assert_eq!(e.public_message(), INTERNAL_PUBLIC_MESSAGE);
        assert!(!e.public_message().contains("/secret"));
        assert!(e.source().unwrap().to_string().contains("/secret/path"));
        let user = Error::invalid("mode", "unknown mode \"x\"");
        assert_eq!(user.public_message(), "unknown mode \"x\"");
    }

    #[test]
    fn context_prefixes_the_message_and_keeps_the_kind() {
        let e = Error::invalid("id", "missing").context("docs.jsonl line 3");
        assert_eq!(e.to_string(), "docs.jsonl line 3: missing");
        assert_eq!(e.field(), Some("id"));
    }

    #[test]
    fn the_error_is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}

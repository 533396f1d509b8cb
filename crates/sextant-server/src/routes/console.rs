//! The web console: a small page (plain ES modules, no framework, no build step) compiled into the
//! binary and served at `/` and `/console/{file}`.
//!
//! The pages need no key; every API call they make sends the key typed into the page, so the
//! console can do nothing its user could not do with `curl`. The assets are fixed at compile time,
//! so each gets an ETag (a hash of its bytes) and browsers revalidate with `If-None-Match` instead
//! of trusting a stale copy after an upgrade. Every answer carries a strict Content-Security-Policy:
//! scripts, styles and fetches from this origin only, no inline script or style, no framing, so an
//! untrusted payload string shown on the page can never run.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::extract::ApiPath;

/// The Content-Security-Policy of every console answer.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Browsers may keep an asset but must revalidate it (its ETag) before each use.
const CACHE_CONTROL: &str = "no-cache";

/// A file of the console.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

/// The page and the files it loads (`/console/{name}`).
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_str!("../../assets/console/index.html"),
};
const FILES: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/console/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/console/app.css"),
    },
];

/// The ETag of asset `i` (0 is `INDEX`, then `FILES` in order); computed once.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(FILES)
            .map(|a| {
                let h = Sha256::digest(a.body.as_bytes());
                let hex: String = h[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    });
    &tags[i]
}

fn serve(i: usize, a: &Asset, headers: &HeaderMap) -> Response {
    let tag = etag(i);
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let common = [
        (header::CONTENT_SECURITY_POLICY, CONSOLE_CSP),
        (header::CACHE_CONTROL, CACHE_CONTROL),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ];
    let etag_header = [(header::ETAG, HeaderValue::from_static(tag))];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common, etag_header).into_response();
    }
    (
        common,
        etag_header,
        [(header::CONTENT_TYPE, a.content_type)],
        a.body,
    )
        .into_response()
}

/// The web console page (no key needed; the key typed into the page is sent with its API calls).
#[utoipa::path(get, path = "/", tag = "console",
    responses((status = 200, description = "The console page", body = String, content_type = "text/html"),
              (status = 304, description = "Not modified (If-None-Match)")))]
pub async fn index(headers: HeaderMap) -> Response {
    serve(0, &INDEX, &headers)
}

/// A file of the web console: `app.js` or `app.css` (no key needed).
#[utoipa::path(get, path = "/console/{file}", tag = "console",
    params(("file" = String, Path, description = "`app.js` or `app.css`")),
    responses((status = 200, description = "The file (JavaScript or CSS)", body = String, content_type = "text/plain"),
              (status = 304, description = "Not modified (If-None-Match)"),
              (status = 404, description = "No such file", body = crate::routes::ErrorBody)))]
pub async fn file(ApiPath(file): ApiPath<String>, headers: HeaderMap) -> ApiResult<Response> {
    let (i, a) = FILES
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == file)
        .ok_or_else(|| {
            ApiError::new(
                sextant_core::ErrorKind::NotFound,
                format!("the console has no file {file:?}"),
            )
            .with_field("file")
        })?;
    Ok(serve(i + 1, a, &headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_files_that_are_served() {
        for part in INDEX.body.split("\"/console/").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            assert!(
                FILES.iter().any(|f| f.name == name),
                "index.html loads /console/{name}, which is not served"
            );
        }
        assert!(INDEX.body.contains("/console/app.js"));
        assert!(INDEX.body.contains("/console/app.css"));
    }

    /// Untrusted text (payloads, chunk text, answers) reaches the page only as text nodes; the
    /// script never parses strings as HTML.
    #[test]
    fn the_script_never_parses_html() {
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "createContextualFragment",
        ] {
            assert!(
                !FILES[0].body.contains(bad),
                "app.js must not use {bad}: build DOM nodes and set textContent"
            );
        }
        assert!(
            !INDEX.body.contains("<script>") && !INDEX.body.contains(" style="),
            "no inline script or style: the CSP forbids them"
        );
    }

    #[test]
    fn etags_differ_per_file_and_are_quoted() {
        let a = etag(0);
        let b = etag(1);
        assert_ne!(a, b);
        assert!(a.starts_with('"') && a.ends_with('"') && a.len() == 18);
    }
}

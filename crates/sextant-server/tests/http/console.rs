//! The web console's pages: served without a key even when auth is on, with the right content
//! types, a strict CSP, revalidation by ETag, and the JSON 404 for files it does not have.

use crate::common::{assert_error, start};

fn get(url: &str, etag: Option<&str>) -> ureq::Response {
    let mut req = ureq::get(url);
    if let Some(t) = etag {
        req = req.set("If-None-Match", t);
    }
    match req.call() {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {url}: {e}"),
    }
}

#[test]
fn console_pages_load_without_a_key_and_carry_a_strict_csp() {
    let t = start(true);
    for (path, ctype, needle) in [
        (
            "/",
            "text/html",
            "<script type=\"module\" src=\"/console/app.js\">",
        ),
        ("/console/app.js", "text/javascript", "sessionStorage"),
        ("/console/app.css", "text/css", "mark"),
    ] {
        let r = get(&t.url(path), None);
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.content_type().starts_with(ctype),
            "{path}: {}",
            r.content_type()
        );
        let csp = r.header("content-security-policy").unwrap().to_string();
        assert!(csp.starts_with("default-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe"), "{csp}");
        assert_eq!(r.header("cache-control"), Some("no-cache"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        let etag = r.header("etag").unwrap().to_string();
        assert!(r.into_string().unwrap().contains(needle), "{path}");
        // Revalidation: the same ETag answers 304 with no body.
        let again = get(&t.url(path), Some(&etag));
        assert_eq!(again.status(), 304, "{path}");
        assert_eq!(again.into_string().unwrap(), "");
    }
    // The API the page calls still needs a key.
    assert_error(
        &t.call("GET", "/collections", None, None),
        401,
        "unauthorized",
        "",
    );
}

#[test]
fn unknown_console_files_are_the_json_404() {
    let t = start(false);
    for f in ["nope.js", "index.html", "..%2Fapp.js", "APP.JS"] {
        assert_error(
            &t.call("GET", &format!("/console/{f}"), None, None),
            404,
            "not_found",
            "console has no file",
        );
    }
    // Deeper paths are not console files either: the router's own 404.
    assert_error(
        &t.call("GET", "/console/a/b", None, None),
        404,
        "not_found",
        "no route",
    );
}

//! Keeping a bad PDF from taking the process down: quiet panic containment around the parser,
//! and the checks and repairs a document needs before the parser may walk it.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use pdf_extract::content::{Content, Operation};
use pdf_extract::{Dictionary, Document, Object, ObjectId};

/// Forms drawing forms deeper than this make a page unreadable (real documents nest a few).
pub(super) const MAX_FORM_DEPTH: usize = 32;
/// Form streams a page may draw, counted with repeats, before it is refused as pathological.
const MAX_FORM_VISITS: usize = 10_000;
/// Page-tree ancestors looked through for inherited attributes.
const MAX_TREE_DEPTH: usize = 64;
/// The page size given to pages that name none (US Letter, what readers assume).
const DEFAULT_MEDIA_BOX: [i64; 4] = [0, 0, 612, 792];

thread_local! {
    /// Whether this thread is inside [`quietly`] (its panics are expected and reported).
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// The message of the last panic caught quietly on this thread.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

static HOOK: Once = Once::new();

/// Runs `f`, turning a panic into `Err(message)` without printing it. The first call installs a
/// panic hook that records panics of threads inside `quietly` and hands every other panic to
/// the hook that was installed before.
pub(super) fn quietly<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET.with(Cell::get) {
                let at = info
                    .location()
                    .map(|l| format!(" at {}:{}", short_path(l.file()), l.line()))
                    .unwrap_or_default();
                let message = format!("{}{at}", payload_message(info.payload()));
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(message));
            } else {
                previous(info);
            }
        }));
    });
    let outer = QUIET.with(|q| q.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(outer));
    result.map_err(|payload| {
        LAST_PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| payload_message(payload.as_ref()))
    })
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic");
    format!("the parser panicked: {text}")
}

/// A source path from the cargo registry (`…/index.crates.io-…/lopdf-0.42.0/src/x.rs`) from the
/// crate's directory on.
fn short_path(file: &str) -> &str {
    file.find("index.crates.io-")
        .and_then(|i| file[i..].find('/').map(|j| &file[i + j + 1..]))
        .unwrap_or(file)
}

/// Repairs a loaded document before the parser walks it: image data is emptied (the parser
/// would interpret it as drawing operators; text needs no pixels), the `'` and `"` operators
/// (which the parser ignores) become `T*` and `Tj`, and pages without a `/MediaBox` anywhere
/// up their tree get one (the parser requires it).
pub(super) fn prepare(doc: &mut Document) {
    let mut content_ids: HashSet<ObjectId> = HashSet::new();
    let pages: Vec<ObjectId> = doc.get_pages().into_values().collect();
    for &page in &pages {
        content_ids.extend(doc.get_page_contents(page));
    }
    for (id, object) in doc.objects.iter_mut() {
        let Object::Stream(stream) = object else {
            continue;
        };
        let subtype = stream.dict.get(b"Subtype").and_then(Object::as_name).ok();
        if subtype == Some(b"Image".as_slice()) {
            stream.set_plain_content(Vec::new());
        } else if subtype == Some(b"Form".as_slice()) || content_ids.contains(id) {
            let plain = stream
                .decompressed_content()
                .unwrap_or_else(|_| stream.content.clone());
            if let Some(rewritten) = rewrite_quote_operators(&plain) {
                stream.set_plain_content(rewritten);
            }
        }
    }
    for page in pages {
        if inherited(doc, page, b"MediaBox").is_none() {
            if let Ok(Object::Dictionary(dict)) = doc.get_object_mut(page) {
                dict.set(
                    "MediaBox",
                    Object::Array(DEFAULT_MEDIA_BOX.iter().map(|&v| v.into()).collect()),
                );
            }
        }
    }
}

/// A content stream with `'` (next line, show) and `"` (word and character spacing, next line,
/// show) spelled out as `Tw`, `Tc`, `T*` and `Tj`; `None` when it has none or does not parse.
fn rewrite_quote_operators(content: &[u8]) -> Option<Vec<u8>> {
    if !content.iter().any(|&b| b == b'\'' || b == b'"') {
        return None;
    }
    let decoded = quietly(|| Content::decode(content)).ok()?.ok()?;
    if !decoded
        .operations
        .iter()
        .any(|op| op.operator == "'" || op.operator == "\"")
    {
        return None;
    }
    let mut operations = Vec::with_capacity(decoded.operations.len() + 8);
    for op in decoded.operations {
        match (op.operator.as_str(), op.operands.as_slice()) {
            ("'", [text]) => {
                operations.push(Operation::new("T*", vec![]));
                operations.push(Operation::new("Tj", vec![text.clone()]));
            }
            ("\"", [word, character, text]) => {
                operations.push(Operation::new("Tw", vec![word.clone()]));
                operations.push(Operation::new("Tc", vec![character.clone()]));
                operations.push(Operation::new("T*", vec![]));
                operations.push(Operation::new("Tj", vec![text.clone()]));
            }
            _ => operations.push(op),
        }
    }
    quietly(|| Content { operations }.encode()).ok()?.ok()
}

/// An attribute a page has or inherits from its ancestors (`Resources`, `MediaBox`), resolved;
/// `None` also when the parent chain is cyclic or deeper than [`MAX_TREE_DEPTH`].
fn inherited<'a>(doc: &'a Document, page: ObjectId, key: &[u8]) -> Option<&'a Object> {
    let mut node = doc.get_dictionary(page).ok()?;
    for _ in 0..MAX_TREE_DEPTH {
        if let Ok(value) = node.get(key) {
            return doc.dereference(value).ok().map(|(_, v)| v);
        }
        let parent = node.get(b"Parent").and_then(Object::as_reference).ok()?;
        node = doc.get_dictionary(parent).ok()?;
    }
    None
}

/// Why the parser must not read a page, if it must not: a cyclic (or absurdly deep) chain of
/// page-tree parents, which it would follow for ever looking for resources, or form XObjects
/// that draw themselves or nest deeper than [`MAX_FORM_DEPTH`], which it would follow until the
/// stack overflows. Mirrors how the parser resolves names: a form's own `/Resources`, else its
/// caller's.
pub(super) fn check_page(doc: &Document, page: ObjectId) -> Result<(), String> {
    let mut seen = HashSet::new();
    let mut node = page;
    loop {
        if !seen.insert(node) || seen.len() > MAX_TREE_DEPTH {
            return Err("its page-tree parents form a cycle".into());
        }
        let dict = doc.get_dictionary(node).map_err(|e| e.to_string())?;
        match dict.get(b"Parent").and_then(Object::as_reference) {
            Ok(parent) => node = parent,
            Err(_) => break,
        }
    }
    let resources = inherited(doc, page, b"Resources").and_then(|r| r.as_dict().ok());
    let content = doc.get_page_content(page).unwrap_or_default();
    let mut walk = FormWalk {
        doc,
        stack: Vec::new(),
        checked: HashSet::new(),
        visits: 0,
    };
    walk.visit(&content, resources)
}

/// The depth-first walk of [`check_page`] through the forms a content stream draws.
struct FormWalk<'a> {
    doc: &'a Document,
    stack: Vec<ObjectId>,
    /// Forms with their own resources already walked without trouble.
    checked: HashSet<ObjectId>,
    visits: usize,
}

impl<'a> FormWalk<'a> {
    fn visit(&mut self, content: &[u8], resources: Option<&'a Dictionary>) -> Result<(), String> {
        if !content.windows(2).any(|w| w == b"Do") {
            return Ok(());
        }
        // A stream that does not parse makes the parser fail on this page, which is contained.
        let Ok(Ok(decoded)) = quietly(|| Content::decode(content)) else {
            return Ok(());
        };
        for op in &decoded.operations {
            if op.operator != "Do" {
                continue;
            }
            let Some(id) = op
                .operands
                .first()
                .and_then(|name| name.as_name().ok())
                .and_then(|name| self.xobject(resources, name))
            else {
                continue;
            };
            if self.stack.contains(&id) {
                return Err("its form XObjects draw themselves".into());
            }
            if self.checked.contains(&id) {
                continue;
            }
            self.visits += 1;
            if self.stack.len() >= MAX_FORM_DEPTH || self.visits > MAX_FORM_VISITS {
                return Err(format!(
                    "its form XObjects nest deeper than {MAX_FORM_DEPTH} or draw more than {MAX_FORM_VISITS} forms"
                ));
            }
            let Ok(stream) = self.doc.get_object(id).and_then(Object::as_stream) else {
                continue;
            };
            let own = stream
                .dict
                .get(b"Resources")
                .ok()
                .and_then(|r| self.doc.dereference(r).ok())
                .and_then(|(_, r)| r.as_dict().ok());
            let body = stream
                .decompressed_content()
                .unwrap_or_else(|_| stream.content.clone());
            self.stack.push(id);
            self.visit(&body, own.or(resources))?;
            self.stack.pop();
            if own.is_some() {
                self.checked.insert(id);
            }
        }
        Ok(())
    }

    /// The object a `Do` name refers to in `resources`' `/XObject` dictionary.
    fn xobject(&self, resources: Option<&Dictionary>, name: &[u8]) -> Option<ObjectId> {
        let xobjects = resources?.get(b"XObject").ok()?;
        let (_, xobjects) = self.doc.dereference(xobjects).ok()?;
        xobjects.as_dict().ok()?.get(name).ok()?.as_reference().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quietly_returns_the_panic_message() {
        assert_eq!(quietly(|| 7), Ok(7));
        let err = quietly(|| -> u8 { panic!("bad xref {}", 3) }).unwrap_err();
        assert!(
            err.contains("bad xref 3") && err.contains("guard.rs"),
            "{err}"
        );
        let err = quietly(|| quietly(|| -> u8 { panic!("inner") }).unwrap_err()).unwrap();
        assert!(err.contains("inner"), "{err}");
        assert_eq!(
            short_path("/r/registry/src/index.crates.io-1949cf8c6b5b557f/lopdf-0.42.0/src/x.rs"),
            "lopdf-0.42.0/src/x.rs"
        );
    }

    #[test]
    fn quote_operators_are_spelled_out() {
        let out = rewrite_quote_operators(b"BT 14 TL (a) Tj (b) ' 1 2 (c) \" ET").unwrap();
        let ops: Vec<String> = Content::decode(&out)
            .unwrap()
            .operations
            .iter()
            .map(|o| o.operator.clone())
            .collect();
        assert_eq!(
            ops,
            ["BT", "TL", "Tj", "T*", "Tj", "Tw", "Tc", "T*", "Tj", "ET"]
        );
        assert_eq!(rewrite_quote_operators(b"BT (it's) Tj ET"), None);
        assert_eq!(rewrite_quote_operators(b"BT (a) Tj ET"), None);
    }
}

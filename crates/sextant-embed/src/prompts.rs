//! Instruction prompts: the text put before a query, a passage or a plain input.
//!
//! sentence-transformers keeps them in `config_sentence_transformers.json` (`prompts`, a name →
//! text map, and `default_prompt_name`) and prepends the chosen prompt to the text as a string
//! before tokenizing. Which prompt a kind of input gets, here as in sentence-transformers'
//! `encode_query` / `encode_document` / `encode`:
//!
//! - a query: `prompts["query"]` when the key exists, else the default prompt, else none;
//! - a passage: the first non-empty of `prompts["passage"]`, `["document"]`, `["corpus"]`;
//!   when some of those keys exist but all are empty, none; when none exists, the default
//!   prompt, else none. Empty prompts are skipped because sentence-transformers 6 writes an
//!   empty `"document"` into every model it saves, which would otherwise hide an e5 model's
//!   `"passage: "`;
//! - a plain input: the default prompt, else none.
//!
//! bge's query instruction ("Represent this sentence for searching relevant passages: ") is a
//! `"query"` prompt like e5's `"query: "`. Every resolved prompt is part of the model's
//! [`crate::ModelFingerprint`], so a changed prompt is a different vector space.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use crate::config::read_json;
use crate::embedder::InputKind;
use crate::EmbedError;

/// File name of sentence-transformers' model-level configuration (prompts, similarity).
pub(crate) const ST_CONFIG_FILE: &str = "config_sentence_transformers.json";
/// The prompt names a passage may use, in the order they are tried.
const PASSAGE_PROMPTS: [&str; 3] = ["passage", "document", "corpus"];
/// The prompt name of queries.
const QUERY_PROMPT: &str = "query";

#[derive(Deserialize, Default)]
struct StConfigFile {
    #[serde(default)]
    prompts: HashMap<String, String>,
    #[serde(default)]
    default_prompt_name: Option<String>,
}

/// The prefix of every input kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Prompts {
    pub(crate) query: String,
    pub(crate) passage: String,
    pub(crate) plain: String,
}

impl Prompts {
    /// The prompts of the model in `root`, with explicit query/passage overrides.
    pub(crate) fn resolve(
        root: &Path,
        query: Option<String>,
        passage: Option<String>,
    ) -> Result<Self, EmbedError> {
        let path = root.join(ST_CONFIG_FILE);
        let file: StConfigFile = if path.is_file() {
            read_json(&path)?
        } else {
            StConfigFile::default()
        };
        let default = match &file.default_prompt_name {
            None => None,
            Some(name) => Some(file.prompts.get(name).cloned().ok_or_else(|| {
                EmbedError::bad_config(
                    &path,
                    format!("default_prompt_name {name:?} is not one of the prompts"),
                )
            })?),
        };
        let query = query.unwrap_or_else(|| {
            file.prompts
                .get(QUERY_PROMPT)
                .or(default.as_ref())
                .cloned()
                .unwrap_or_default()
        });
        let passage = passage.unwrap_or_else(|| {
            let named: Vec<&String> = PASSAGE_PROMPTS
                .iter()
                .filter_map(|n| file.prompts.get(*n))
                .collect();
            match named.iter().find(|p| !p.is_empty()) {
                Some(p) => (*p).clone(),
                None if !named.is_empty() => String::new(),
                None => default.clone().unwrap_or_default(),
            }
        });
        Ok(Prompts {
            query,
            passage,
            plain: default.unwrap_or_default(),
        })
    }

    /// The prefix of `kind`.
    pub(crate) fn get(&self, kind: InputKind) -> &str {
        match kind {
            InputKind::Query => &self.query,
            InputKind::Passage => &self.passage,
            InputKind::Plain => &self.plain,
        }
    }

    /// `text` with the prefix of `kind` before it.
    pub(crate) fn apply(&self, text: &str, kind: InputKind) -> String {
        let p = self.get(kind);
        if p.is_empty() {
            text.to_owned()
        } else {
            format!("{p}{text}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(json: &str) -> Result<Prompts, EmbedError> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ST_CONFIG_FILE), json).unwrap();
        Prompts::resolve(dir.path(), None, None)
    }

    #[test]
    fn e5_prompts_survive_the_empty_document_prompt() {
        let p = resolve(
            r#"{"prompts": {"document": "", "passage": "passage: ", "query": "query: "},
                "default_prompt_name": null}"#,
        )
        .unwrap();
        assert_eq!(p.query, "query: ");
        assert_eq!(p.passage, "passage: ");
        assert_eq!(p.plain, "");
        assert_eq!(p.apply("x", InputKind::Query), "query: x");
        assert_eq!(p.apply("x", InputKind::Plain), "x");
    }

    #[test]
    fn bge_has_a_query_instruction_only() {
        let p = resolve(
            r#"{"prompts": {"query": "Represent this sentence for searching relevant passages: ",
                "document": "", "passage": ""}}"#,
        )
        .unwrap();
        assert!(p.query.starts_with("Represent"));
        assert_eq!((p.passage.as_str(), p.plain.as_str()), ("", ""));
    }

    #[test]
    fn document_and_corpus_names_and_the_default_prompt() {
        let p = resolve(r#"{"prompts": {"document": "doc: ", "corpus": "c: "}}"#).unwrap();
        assert_eq!(p.passage, "doc: ");
        let p = resolve(r#"{"prompts": {"corpus": "c: "}}"#).unwrap();
        assert_eq!(p.passage, "c: ");
        // The default prompt fills in where no named prompt applies.
        let p = resolve(
            r#"{"prompts": {"s2p": "Instruct: retrieve\nQuery: "}, "default_prompt_name": "s2p"}"#,
        )
        .unwrap();
        assert_eq!(p.query, "Instruct: retrieve\nQuery: ");
        assert_eq!(p.passage, p.query);
        assert_eq!(p.plain, p.query);
        // ... but an explicit empty passage prompt keeps passages bare.
        let p = resolve(r#"{"prompts": {"q": "q: ", "document": ""}, "default_prompt_name": "q"}"#)
            .unwrap();
        assert_eq!((p.query.as_str(), p.passage.as_str()), ("q: ", ""));
        let err = resolve(r#"{"prompts": {}, "default_prompt_name": "nope"}"#).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }

    #[test]
    fn overrides_win_and_no_file_means_no_prompts() {
        let dir = tempfile::tempdir().unwrap();
        let p = Prompts::resolve(dir.path(), None, None).unwrap();
        assert_eq!(p, Prompts::default());
        let p = Prompts::resolve(dir.path(), Some("q: ".into()), Some(String::new())).unwrap();
        assert_eq!((p.query.as_str(), p.passage.as_str()), ("q: ", ""));
    }
}

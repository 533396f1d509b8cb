//! [`CodeLanguage`]: the programming languages the code chunker knows, told by file extension
//! or `#!` line.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// Every extension of [`CodeLanguage::ALL`] (what [`Format::Code`](super::Format::Code)
/// covers).
pub(super) const EXTENSIONS: &[&str] = &[
    "rs", "py", "pyi", "pyw", "js", "mjs", "cjs", "jsx", "ts", "mts", "cts", "tsx", "go", "java",
    "c", "h", "cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++", "cs", "rb", "rake", "sh",
    "bash", "zsh", "ksh",
];

/// A programming language of [`Format::Code`](super::Format::Code) files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CodeLanguage {
    /// Rust (`.rs`).
    Rust,
    /// Python (`.py`, `.pyi`, `.pyw`).
    Python,
    /// JavaScript (`.js`, `.mjs`, `.cjs`, `.jsx`).
    JavaScript,
    /// TypeScript (`.ts`, `.mts`, `.cts`, `.tsx`).
    TypeScript,
    /// Go (`.go`).
    Go,
    /// Java (`.java`).
    Java,
    /// C (`.c`, `.h`).
    C,
    /// C++ (`.cc`, `.cpp`, `.cxx`, `.c++`, `.hh`, `.hpp`, `.hxx`, `.h++`).
    Cpp,
    /// C# (`.cs`).
    CSharp,
    /// Ruby (`.rb`, `.rake`).
    Ruby,
    /// POSIX shell, Bash, Zsh, Korn shell (`.sh`, `.bash`, `.zsh`, `.ksh`).
    Shell,
}

impl CodeLanguage {
    /// Every language.
    pub const ALL: &'static [CodeLanguage] = &[
        CodeLanguage::Rust,
        CodeLanguage::Python,
        CodeLanguage::JavaScript,
        CodeLanguage::TypeScript,
        CodeLanguage::Go,
        CodeLanguage::Java,
        CodeLanguage::C,
        CodeLanguage::Cpp,
        CodeLanguage::CSharp,
        CodeLanguage::Ruby,
        CodeLanguage::Shell,
    ];

    /// The language's name: `rust`, `python`, `javascript`, `typescript`, `go`, `java`, `c`,
    /// `cpp`, `csharp`, `ruby` or `shell`.
    pub fn name(self) -> &'static str {
        match self {
            CodeLanguage::Rust => "rust",
            CodeLanguage::Python => "python",
            CodeLanguage::JavaScript => "javascript",
            CodeLanguage::TypeScript => "typescript",
            CodeLanguage::Go => "go",
            CodeLanguage::Java => "java",
            CodeLanguage::C => "c",
            CodeLanguage::Cpp => "cpp",
            CodeLanguage::CSharp => "csharp",
            CodeLanguage::Ruby => "ruby",
            CodeLanguage::Shell => "shell",
        }
    }

    /// The file extensions of the language (lower case, without the dot).
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            CodeLanguage::Rust => &["rs"],
            CodeLanguage::Python => &["py", "pyi", "pyw"],
            CodeLanguage::JavaScript => &["js", "mjs", "cjs", "jsx"],
            CodeLanguage::TypeScript => &["ts", "mts", "cts", "tsx"],
            CodeLanguage::Go => &["go"],
            CodeLanguage::Java => &["java"],
            CodeLanguage::C => &["c", "h"],
            CodeLanguage::Cpp => &["cc", "cpp", "cxx", "c++", "hh", "hpp", "hxx", "h++"],
            CodeLanguage::CSharp => &["cs"],
            CodeLanguage::Ruby => &["rb", "rake"],
            CodeLanguage::Shell => &["sh", "bash", "zsh", "ksh"],
        }
    }

    /// The language of a file extension (any case, with or without the dot).
    pub fn from_extension(ext: &str) -> Option<CodeLanguage> {
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        CodeLanguage::ALL
            .iter()
            .copied()
            .find(|l| l.extensions().contains(&ext.as_str()))
    }

    /// The language of a path, by its extension.
    pub fn from_path(path: &Path) -> Option<CodeLanguage> {
        CodeLanguage::from_extension(path.extension()?.to_str()?)
    }

    /// The language a `#!` line runs (`#!/bin/sh`, `#!/usr/bin/env python3`, `#!/usr/bin/env
    /// -S node --flag`), if the source starts with one we know.
    pub fn from_shebang(source: &str) -> Option<CodeLanguage> {
        let line = source.strip_prefix("#!")?.lines().next()?;
        let mut words = line.split_whitespace();
        let mut program = words.next()?.rsplit('/').next()?;
        if program == "env" {
            program = words.find(|w| !w.starts_with('-'))?;
        }
        let name = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
        match name {
            "sh" | "bash" | "zsh" | "ksh" | "dash" | "ash" => Some(CodeLanguage::Shell),
            "python" | "pypy" => Some(CodeLanguage::Python),
            "node" | "nodejs" => Some(CodeLanguage::JavaScript),
            "deno" | "bun" | "ts-node" | "tsx" => Some(CodeLanguage::TypeScript),
            "ruby" => Some(CodeLanguage::Ruby),
            _ => None,
        }
    }

    /// The language of a file: by extension, else by its `#!` line.
    pub fn detect(path: &Path, source: &str) -> Option<CodeLanguage> {
        CodeLanguage::from_path(path).or_else(|| CodeLanguage::from_shebang(source))
    }
}

impl fmt::Display for CodeLanguage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown programming language name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown programming language {0:?}: expected rust, python, javascript, typescript, go, \
     java, c, cpp, csharp, ruby or shell"
)]
pub struct UnknownLanguage(pub String);

impl FromStr for CodeLanguage {
    type Err = UnknownLanguage;

    /// A name ([`CodeLanguage::name`]) or an extension (`rs`, `py`, `ts`, …), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        CodeLanguage::ALL
            .iter()
            .copied()
            .find(|l| l.name() == t)
            .or_else(|| CodeLanguage::from_extension(&t))
            .ok_or_else(|| UnknownLanguage(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_by_extension_name_and_shebang() {
        let mut all: Vec<&str> = CodeLanguage::ALL
            .iter()
            .flat_map(|l| l.extensions().iter().copied())
            .collect();
        let mut listed = EXTENSIONS.to_vec();
        all.sort_unstable();
        listed.sort_unstable();
        assert_eq!(all, listed, "EXTENSIONS lists every language's extensions");
        for &l in CodeLanguage::ALL {
            assert_eq!(l.name().parse::<CodeLanguage>(), Ok(l));
            assert_eq!(CodeLanguage::from_extension(l.extensions()[0]), Some(l));
        }
        assert_eq!(
            CodeLanguage::from_path(Path::new("src/Main.JAVA")),
            Some(CodeLanguage::Java)
        );
        assert_eq!("TSX".parse::<CodeLanguage>(), Ok(CodeLanguage::TypeScript));
        assert!("cobol".parse::<CodeLanguage>().is_err());
        assert_eq!(
            CodeLanguage::from_shebang("#!/bin/bash\n"),
            Some(CodeLanguage::Shell)
        );
        assert_eq!(
            CodeLanguage::from_shebang("#!/usr/bin/env python3.12\n"),
            Some(CodeLanguage::Python)
        );
        assert_eq!(
            CodeLanguage::from_shebang("#!/usr/bin/env -S node --no-warnings\n"),
            Some(CodeLanguage::JavaScript)
        );
        assert_eq!(CodeLanguage::from_shebang("#!/usr/bin/perl\n"), None);
        assert_eq!(CodeLanguage::from_shebang("no shebang"), None);
        assert_eq!(
            CodeLanguage::detect(Path::new("deploy"), "#!/bin/sh\necho hi\n"),
            Some(CodeLanguage::Shell)
        );
    }
}

//! Where the master key of encrypted collections comes from: a key file (`--master-key-file`,
//! or `$SEXTANT_MASTER_KEY_FILE`) or the key itself in `$SEXTANT_MASTER_KEY` (64 hex digits).
//! A key file under the data directory is refused: a key stored beside the data protects
//! nothing.

use std::path::{Path, PathBuf};

use sextant_engine::MasterKey;

use crate::error::{Error, Result};

/// Environment variable holding the master key itself (64 hex digits).
pub const MASTER_KEY_ENV: &str = "SEXTANT_MASTER_KEY";
/// Environment variable naming the master key file.
pub const MASTER_KEY_FILE_ENV: &str = "SEXTANT_MASTER_KEY_FILE";

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    })
}

/// Reads the master key from the key file at `path` (refused when it lies under `data_dir`).
pub fn read_key_file(path: &Path, data_dir: &Path, field: &str) -> Result<MasterKey> {
    if absolute(path).starts_with(absolute(data_dir)) {
        return Err(Error::invalid(
            field,
            format!(
                "the master key file {} is inside the data directory {}; keep it elsewhere (a key stored beside the data protects nothing)",
                path.display(),
                data_dir.display()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        Error::invalid(
            field,
            format!("cannot read the master key file {}: {e}", path.display()),
        )
    })?;
    MasterKey::parse(&bytes).map_err(|e| Error::invalid(field, format!("{}: {e}", path.display())))
}

/// The master key the caller gives: `file` (a flag), else `$SEXTANT_MASTER_KEY_FILE`, else
/// `$SEXTANT_MASTER_KEY`; `None` when none is given. Giving a file and the key at once is
/// refused (which one was meant?).
pub fn load(file: Option<&Path>, data_dir: &Path) -> Result<Option<MasterKey>> {
    let env_file = std::env::var_os(MASTER_KEY_FILE_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let env_key = std::env::var(MASTER_KEY_ENV).ok().filter(|v| !v.is_empty());
    let (file, field) = match (file, &env_file) {
        (Some(f), _) => (Some(f.to_path_buf()), "master_key_file"),
        (None, Some(f)) => (Some(f.clone()), MASTER_KEY_FILE_ENV),
        (None, None) => (None, ""),
    };
    match (file, env_key) {
        (Some(_), Some(_)) => Err(Error::invalid(
            field,
            format!(
                "give the master key once: a key file ({field}) or ${MASTER_KEY_ENV}, not both"
            ),
        )),
        (Some(f), None) => read_key_file(&f, data_dir, field).map(Some),
        (None, Some(k)) => MasterKey::parse(k.as_bytes())
            .map(Some)
            .map_err(|e| Error::invalid(MASTER_KEY_ENV, format!("${MASTER_KEY_ENV}: {e}"))),
        (None, None) => Ok(None),
    }
}

/// Writes a new random master key (64 hex digits and a newline) to `path`, readable by its
/// owner only; refuses an existing file or one under `data_dir`.
pub fn generate(path: &Path, data_dir: &Path) -> Result<MasterKey> {
    if absolute(path).starts_with(absolute(data_dir)) {
        return Err(Error::invalid(
            "out",
            format!(
                "{} is inside the data directory {}; keep the master key elsewhere",
                path.display(),
                data_dir.display()
            ),
        ));
    }
    let key = MasterKey::generate()
        .map_err(|e| Error::new(sextant_engine::ErrorKind::Internal, e.to_string()))?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(path).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::AlreadyExists {
            sextant_engine::ErrorKind::AlreadyExists
        } else {
            sextant_engine::ErrorKind::InvalidInput
        };
        Error::new(kind, format!("cannot create {}: {e}", path.display())).with_field("out")
    })?;
    std::io::Write::write_all(&mut f, format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| {
            Error::new(
                sextant_engine::ErrorKind::Internal,
                format!("writing {}: {e}", path.display()),
            )
        })?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_file_inside_the_data_directory_is_refused_and_others_read() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let inside = data.join("key");
        let e = generate(&inside, &data).unwrap_err();
        assert!(e.to_string().contains("inside the data directory"), "{e}");
        std::fs::write(&inside, "00".repeat(32)).unwrap();
        let e = read_key_file(&inside, &data, "master_key_file").unwrap_err();
        assert!(e.to_string().contains("inside the data directory"), "{e}");
        let outside = dir.path().join("key");
        let made = generate(&outside, &data).unwrap();
        assert_eq!(read_key_file(&outside, &data, "f").unwrap().id(), made.id());
        assert!(generate(&outside, &data).is_err(), "never overwritten");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&outside).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&outside, "not a key").unwrap();
        let e = read_key_file(&outside, &data, "f").unwrap_err();
        assert!(e.to_string().contains("not a master key"), "{e}");
    }
}

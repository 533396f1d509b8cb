//! The files of a collection as a whole: creating them durably, and removing what interrupted
//! writes left behind before a collection is opened.
//!
//! Everything a write creates reaches its final name by a rename after it was fsynced, so a
//! crash can leave only temporary names: `.manifest.tmp` (a manifest replacement), `wal.wal.tmp`
//! (a WAL rewrite), `segments/<id>.tmp` (a segment being written), `segments/<id>` that the
//! manifest does not name (a flush or merge whose manifest never landed), and tombstone files
//! the manifest does not name (removed by `Collection::open` per segment).

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use sextant_storage::crypt::{DataKeys, KeyFile, MasterKey, KEYS_FILE};
use sextant_storage::envelope::{self, io_err};
use sextant_storage::fs::Fs;
use sextant_storage::schema::{Manifest, Schema};
use sextant_storage::wal::{Durability, Wal};

use crate::collection::{RecoveryReport, MANIFEST, SEGMENTS, WAL_FILE};
use crate::error::Result;

/// Creates the files of a new collection in `dir` (which must not exist): built in
/// `<dir>.creating`, every file and directory fsynced, then renamed into place and the parent
/// fsynced, so a crash leaves either no collection or a whole one.
///
/// With `keys` (an encrypted collection), the key file is written first, and the manifest and
/// WAL through the collection's encrypting file system.
pub(crate) fn create_files(
    plain: &Arc<dyn Fs>,
    dir: &Path,
    schema: &Schema,
    keys: Option<(KeyFile, DataKeys, MasterKey)>,
) -> Result<()> {
    let fs = &**plain;
    let tmp = dir.with_extension("creating");
    if fs.exists(&tmp) {
        fs.remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
    }
    fs.create_dir_all(&tmp.join(SEGMENTS))
        .map_err(|e| io_err(&tmp, e))?;
    envelope::sync_dir(fs, &tmp.join(SEGMENTS))?;
    let handle = match keys {
        Some((file, data, master)) => {
            file.write(fs, &tmp.join(KEYS_FILE))?;
            crate::encryption::with_keys(plain, dir, master, data).0
        }
        None => plain.clone(),
    };
    Manifest::new(schema.clone()).write(&*handle, &tmp.join(MANIFEST))?;
    // `create_in` fsyncs the log and the temporary directory.
    drop(Wal::create_in(
        handle,
        &tmp.join(WAL_FILE),
        Durability::Always,
    )?);
    fs.rename(&tmp, dir).map_err(|e| io_err(dir, e))?;
    envelope::sync_dir(fs, envelope::parent(dir))?;
    Ok(())
}

/// Removes temporary files in the collection directory and segment directories the manifest
/// does not name; records what it removed. Then fsyncs the collection directory and its
/// parent: a creation (or an earlier write) whose last directory fsync failed may have left
/// them volatile, and writes acknowledged from now on must not depend on that.
pub(crate) fn remove_leftovers(
    fs: &dyn Fs,
    dir: &Path,
    manifest: &Manifest,
    recovery: &mut RecoveryReport,
) -> Result<()> {
    envelope::sync_dir(fs, envelope::parent(dir))?;
    envelope::sync_dir(fs, dir)?;
    for name in fs.read_dir(dir).map_err(|e| io_err(dir, e))? {
        if envelope::is_leftover(&name) {
            remove_any(fs, &dir.join(&name))?;
            recovery.removed_leftovers.push(name);
        }
    }
    let named: HashSet<String> = manifest.segments.iter().map(|s| s.id.to_string()).collect();
    let segs_dir = dir.join(SEGMENTS);
    fs.create_dir_all(&segs_dir)
        .map_err(|e| io_err(&segs_dir, e))?;
    for name in fs.read_dir(&segs_dir).map_err(|e| io_err(&segs_dir, e))? {
        if !named.contains(&name) {
            remove_any(fs, &segs_dir.join(&name))?;
            recovery
                .removed_leftovers
                .push(format!("{SEGMENTS}/{name}"));
        }
    }
    Ok(())
}

fn remove_any(fs: &dyn Fs, path: &Path) -> Result<()> {
    if fs.is_dir(path) {
        fs.remove_dir_all(path)
    } else {
        fs.remove_file(path)
    }
    .map_err(|e| io_err(path, e).into())
}

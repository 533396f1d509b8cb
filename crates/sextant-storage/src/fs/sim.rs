//! A simulated disk for tests: in memory, with faults on demand and power loss.
//!
//! Files and directories are nodes (inodes). A file node has its written bytes and its durable
//! bytes; a directory node has its current entries and its durable entries. `sync_file` makes a
//! file's bytes durable, `sync_dir` a directory's entries (creations, renames, removals) —
//! nothing else does, which is the weakest guarantee POSIX gives and the one Sextant must be
//! correct under. [`SimFs::power_loss`] returns a new disk holding only what was durable,
//! reached through durable entries from the root; with a seed, the cut is less kind: torn
//! appends, and directories whose unsynced entries reached the disk anyway.
//! [`SimFs::restart`] keeps everything (a process crash: the page cache survives).
//!
//! Every mutating operation and every fsync is numbered ([`Op::index`]); reads are not. A test
//! fails operations with [`SimFs::fail_when`] (a predicate on the operation) or cuts the power
//! at an operation with [`SimFs::crash_at`]: the durable state just before that operation is
//! kept as the crash image, and that operation and every later one fail with EIO (the machine
//! is gone), so the code under test stops promptly.
//!
//! A failed write writes half its bytes; a failed fsync makes nothing durable; a failed rename,
//! removal or directory creation changes nothing.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use std::sync::{Mutex, MutexGuard};

use super::{Fs, LogFile};

/// Linux's EIO.
pub const EIO: i32 = 5;
/// Linux's ENOSPC.
pub const ENOSPC: i32 = 28;
const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const ENOTDIR: i32 = 20;
const EISDIR: i32 = 21;
const ENOTEMPTY: i32 = 39;

/// The kinds of numbered operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Create or truncate a file and write it whole.
    Write,
    /// Append to a log file.
    Append,
    /// Cut or extend a log file.
    SetLen,
    /// Open (maybe create) a log file.
    OpenLog,
    /// fsync a file.
    SyncFile,
    /// fsync a directory.
    SyncDir,
    /// Rename.
    Rename,
    /// Remove a file.
    RemoveFile,
    /// Remove a directory tree.
    RemoveDir,
    /// Create directories.
    CreateDir,
}

impl OpKind {
    /// Whether this is an fsync.
    pub fn is_sync(self) -> bool {
        matches!(self, OpKind::SyncFile | OpKind::SyncDir)
    }
}

/// One numbered operation, as a fault predicate sees it.
#[derive(Debug, Clone)]
pub struct Op {
    /// Its number (0, 1, …, in the order operations reach the disk).
    pub index: u64,
    /// What it does.
    pub kind: OpKind,
    /// The path it acts on (the source of a rename).
    pub path: PathBuf,
}

/// A fault to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An I/O error (EIO).
    Eio,
    /// No space left on the device (ENOSPC).
    Enospc,
}

impl Fault {
    /// The error the operation returns.
    pub fn error(self) -> io::Error {
        io::Error::from_raw_os_error(match self {
            Fault::Eio => EIO,
            Fault::Enospc => ENOSPC,
        })
    }
}

type Predicate = Box<dyn FnMut(&Op) -> Option<Fault> + Send>;

#[derive(Debug, Clone)]
enum Node {
    File {
        cur: Vec<u8>,
        durable: Vec<u8>,
    },
    Dir {
        cur: BTreeMap<String, usize>,
        durable: BTreeMap<String, usize>,
    },
}

struct State {
    nodes: Vec<Node>,
    ops: u64,
    fault: Option<Predicate>,
    crash_at: Option<u64>,
    image: Option<Vec<Node>>,
    torn_seed: u64,
    journal: Vec<Op>,
}

/// The simulated disk. Cheap to clone (clones share the disk).
#[derive(Clone)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimFs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.lock();
        f.debug_struct("SimFs")
            .field("nodes", &st.nodes.len())
            .field("ops", &st.ops)
            .finish()
    }
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

fn err(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code)
}

fn names(path: &Path) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => out.push(n.to_string_lossy().into_owned()),
            Component::CurDir => {}
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("simulated paths are absolute and plain: {}", path.display()),
                ))
            }
        }
    }
    Ok(out)
}

impl State {
    fn fresh(nodes: Vec<Node>) -> State {
        State {
            nodes,
            ops: 0,
            fault: None,
            crash_at: None,
            image: None,
            torn_seed: 0,
            journal: Vec::new(),
        }
    }

    /// Numbers an operation and decides whether it fails.
    fn begin(&mut self, kind: OpKind, path: &Path) -> Result<(), Fault> {
        let op = Op {
            index: self.ops,
            kind,
            path: path.to_path_buf(),
        };
        self.ops += 1;
        if self.image.is_none() && self.crash_at == Some(op.index) {
            self.image = Some(self.durable_image(self.torn_seed));
        }
        if self.image.is_some() && self.crash_at.is_some() {
            return Err(Fault::Eio);
        }
        self.journal.push(op.clone());
        match self.fault.as_mut().and_then(|f| f(&op)) {
            Some(fault) => Err(fault),
            None => Ok(()),
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<usize> {
        let mut at = 0;
        for n in names(path)? {
            match &self.nodes[at] {
                Node::Dir { cur, .. } => at = *cur.get(&n).ok_or_else(|| err(ENOENT))?,
                Node::File { .. } => return Err(err(ENOTDIR)),
            }
        }
        Ok(at)
    }

    /// The parent directory's node and the last name.
    fn parent(&self, path: &Path) -> io::Result<(usize, String)> {
        let mut ns = names(path)?;
        let last = ns.pop().ok_or_else(|| err(EEXIST))?;
        let mut at = 0;
        for n in ns {
            match &self.nodes[at] {
                Node::Dir { cur, .. } => at = *cur.get(&n).ok_or_else(|| err(ENOENT))?,
                Node::File { .. } => return Err(err(ENOTDIR)),
            }
        }
        match self.nodes[at] {
            Node::Dir { .. } => Ok((at, last)),
            Node::File { .. } => Err(err(ENOTDIR)),
        }
    }

    fn entries(&mut self, dir: usize) -> &mut BTreeMap<String, usize> {
        match &mut self.nodes[dir] {
            Node::Dir { cur, .. } => cur,
            Node::File { .. } => unreachable!("parent() returns directories"),
        }
    }

    fn file(&mut self, node: usize) -> io::Result<&mut Vec<u8>> {
        match &mut self.nodes[node] {
            Node::File { cur, .. } => Ok(cur),
            Node::Dir { .. } => Err(err(EISDIR)),
        }
    }

    /// The nodes as a power cut leaves them: durable entries from the root, durable bytes.
    /// With a non-zero seed the cut is less kind, as real disks are: a file whose durable bytes
    /// are a prefix of its written bytes keeps a random part of the unsynced tail (a torn
    /// append), and a directory may keep all its current entries even though it was not
    /// fsynced (its metadata reached the disk on its own; all or nothing per directory, as a
    /// rename inside one directory is one journal transaction).
    fn durable_image(&self, seed: u64) -> Vec<Node> {
        let mut rng = seed;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut out = self.nodes.clone();
        let mut stack = vec![0usize];
        while let Some(n) = stack.pop() {
            match &mut out[n] {
                Node::Dir { cur, durable } => {
                    let kept = if seed != 0 && next() % 4 == 0 {
                        cur.clone()
                    } else {
                        durable.clone()
                    };
                    stack.extend(kept.values().copied());
                    *cur = kept.clone();
                    *durable = kept;
                }
                Node::File { cur, durable } => {
                    let mut keep = durable.clone();
                    if seed != 0 && cur.len() > durable.len() && cur.starts_with(durable) {
                        let extra = (next() % (cur.len() - durable.len() + 1) as u64) as usize;
                        keep.extend_from_slice(&cur[durable.len()..durable.len() + extra]);
                    }
                    *cur = keep.clone();
                    *durable = keep;
                }
            }
        }
        out
    }
}

impl SimFs {
    /// An empty disk (just the root directory, durable).
    pub fn new() -> SimFs {
        SimFs::from_nodes(vec![Node::Dir {
            cur: BTreeMap::new(),
            durable: BTreeMap::new(),
        }])
    }

    fn from_nodes(nodes: Vec<Node>) -> SimFs {
        SimFs {
            state: Arc::new(Mutex::new(State::fresh(nodes))),
        }
    }

    /// This disk as the engine's file-system handle.
    pub fn handle(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    /// Fails every operation for which `predicate` returns a fault (replacing any earlier
    /// predicate).
    pub fn fail_when(&self, predicate: impl FnMut(&Op) -> Option<Fault> + Send + 'static) {
        self.lock().fault = Some(Box::new(predicate));
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        self.lock().fault = None;
    }

    /// Cuts the power just before operation `index`: the durable state then is kept (with
    /// torn appends drawn from `torn_seed`, none when 0) and every operation from `index` on
    /// fails with EIO.
    pub fn crash_at(&self, index: u64, torn_seed: u64) {
        let mut st = self.lock();
        st.crash_at = Some(index);
        st.torn_seed = torn_seed;
    }

    /// Whether the power was cut (by [`SimFs::crash_at`]).
    pub fn crashed(&self) -> bool {
        self.lock().image.is_some()
    }

    /// How many operations were numbered so far.
    pub fn ops(&self) -> u64 {
        self.lock().ops
    }

    /// The operations numbered so far (those refused after a crash are not listed).
    pub fn journal(&self) -> Vec<Op> {
        self.lock().journal.clone()
    }

    /// The disk after the power cut of [`SimFs::crash_at`], or after a cut now when the
    /// power has not been cut.
    pub fn after_crash(&self) -> SimFs {
        let st = self.lock();
        match &st.image {
            Some(nodes) => SimFs::from_nodes(nodes.clone()),
            None => SimFs::from_nodes(st.durable_image(st.torn_seed)),
        }
    }

    /// A new disk holding what survives a power cut now: durable state only (torn appends
    /// drawn from `torn_seed`, none when 0).
    pub fn power_loss(&self, torn_seed: u64) -> SimFs {
        SimFs::from_nodes(self.lock().durable_image(torn_seed))
    }

    /// A new disk holding everything written (a process crash: the page cache survives).
    pub fn restart(&self) -> SimFs {
        let st = self.lock();
        SimFs::from_nodes(st.nodes.clone())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run<T>(
        &self,
        kind: OpKind,
        path: &Path,
        f: impl FnOnce(&mut State, Option<Fault>) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut st = self.lock();
        let fault = st.begin(kind, path).err();
        f(&mut st, fault)
    }
}

impl Fs for SimFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut st = self.lock();
        let n = st.lookup(path)?;
        st.file(n).map(|b| b.clone())
    }

    fn exists(&self, path: &Path) -> bool {
        self.lock().lookup(path).is_ok()
    }

    fn is_dir(&self, path: &Path) -> bool {
        let st = self.lock();
        st.lookup(path)
            .is_ok_and(|n| matches!(st.nodes[n], Node::Dir { .. }))
    }

    fn file_len(&self, path: &Path) -> io::Result<u64> {
        let mut st = self.lock();
        let n = st.lookup(path)?;
        st.file(n).map(|b| b.len() as u64)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = self.lock();
        let n = st.lookup(path)?;
        match &st.nodes[n] {
            Node::Dir { cur, .. } => Ok(cur.keys().cloned().collect()),
            Node::File { .. } => Err(err(ENOTDIR)),
        }
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.run(OpKind::CreateDir, path, |st, fault| {
            if let Some(f) = fault {
                return Err(f.error());
            }
            let mut at = 0;
            for n in names(path)? {
                let next = match &st.nodes[at] {
                    Node::Dir { cur, .. } => cur.get(&n).copied(),
                    Node::File { .. } => return Err(err(ENOTDIR)),
                };
                at = match next {
                    Some(x) => x,
                    None => {
                        st.nodes.push(Node::Dir {
                            cur: BTreeMap::new(),
                            durable: BTreeMap::new(),
                        });
                        let id = st.nodes.len() - 1;
                        st.entries(at).insert(n, id);
                        id
                    }
                };
            }
            match st.nodes[at] {
                Node::Dir { .. } => Ok(()),
                Node::File { .. } => Err(err(EEXIST)),
            }
        })
    }

    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.run(OpKind::Write, path, |st, fault| {
            let (dir, name) = st.parent(path)?;
            let node = match st.entries(dir).get(&name).copied() {
                Some(n) => n,
                None => {
                    st.nodes.push(Node::File {
                        cur: Vec::new(),
                        durable: Vec::new(),
                    });
                    let id = st.nodes.len() - 1;
                    st.entries(dir).insert(name, id);
                    id
                }
            };
            let data = st.file(node)?;
            data.clear();
            match fault {
                Some(f) => {
                    data.extend_from_slice(&bytes[..bytes.len() / 2]);
                    Err(f.error())
                }
                None => {
                    data.extend_from_slice(bytes);
                    Ok(())
                }
            }
        })
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.run(OpKind::SyncFile, path, |st, fault| {
            let n = st.lookup(path)?;
            if let Some(f) = fault {
                return Err(f.error());
            }
            match &mut st.nodes[n] {
                Node::File { cur, durable } => *durable = cur.clone(),
                Node::Dir { .. } => return Err(err(EISDIR)),
            }
            Ok(())
        })
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.run(OpKind::SyncDir, path, |st, fault| {
            let n = st.lookup(path)?;
            if let Some(f) = fault {
                return Err(f.error());
            }
            match &mut st.nodes[n] {
                Node::Dir { cur, durable } => *durable = cur.clone(),
                Node::File { .. } => return Err(err(ENOTDIR)),
            }
            Ok(())
        })
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.run(OpKind::Rename, from, |st, fault| {
            let (fdir, fname) = st.parent(from)?;
            let (tdir, tname) = st.parent(to)?;
            let node = *st.entries(fdir).get(&fname).ok_or_else(|| err(ENOENT))?;
            if let Some(f) = fault {
                return Err(f.error());
            }
            if let Some(&old) = st.entries(tdir).get(&tname) {
                match (&st.nodes[node], &st.nodes[old]) {
                    (Node::Dir { .. }, Node::Dir { cur, .. }) if !cur.is_empty() => {
                        return Err(err(ENOTEMPTY))
                    }
                    (Node::Dir { .. }, Node::File { .. }) => return Err(err(ENOTDIR)),
                    (Node::File { .. }, Node::Dir { .. }) => return Err(err(EISDIR)),
                    _ => {}
                }
            }
            st.entries(fdir).remove(&fname);
            st.entries(tdir).insert(tname, node);
            Ok(())
        })
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.run(OpKind::RemoveFile, path, |st, fault| {
            let (dir, name) = st.parent(path)?;
            let node = *st.entries(dir).get(&name).ok_or_else(|| err(ENOENT))?;
            if matches!(st.nodes[node], Node::Dir { .. }) {
                return Err(err(EISDIR));
            }
            if let Some(f) = fault {
                return Err(f.error());
            }
            st.entries(dir).remove(&name);
            Ok(())
        })
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.run(OpKind::RemoveDir, path, |st, fault| {
            let (dir, name) = st.parent(path)?;
            st.entries(dir).get(&name).ok_or_else(|| err(ENOENT))?;
            if let Some(f) = fault {
                return Err(f.error());
            }
            st.entries(dir).remove(&name);
            Ok(())
        })
    }

    fn open_log(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>> {
        let node = self.run(OpKind::OpenLog, path, |st, fault| {
            if let Some(f) = fault {
                return Err(f.error());
            }
            let (dir, name) = st.parent(path)?;
            match st.entries(dir).get(&name).copied() {
                Some(n) => st.file(n).map(|_| n),
                None if create => {
                    st.nodes.push(Node::File {
                        cur: Vec::new(),
                        durable: Vec::new(),
                    });
                    let id = st.nodes.len() - 1;
                    st.entries(dir).insert(name, id);
                    Ok(id)
                }
                None => Err(err(ENOENT)),
            }
        })?;
        Ok(Box::new(SimLog {
            fs: self.clone(),
            node,
            path: path.to_path_buf(),
        }))
    }
}

/// An open log file of a [`SimFs`] (it keeps writing to its node even after a rename or
/// removal, as a real file descriptor does).
#[derive(Debug)]
struct SimLog {
    fs: SimFs,
    node: usize,
    path: PathBuf,
}

impl LogFile for SimLog {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let node = self.node;
        self.fs.run(OpKind::Append, &self.path, |st, fault| {
            let data = st.file(node)?;
            match fault {
                Some(f) => {
                    data.extend_from_slice(&bytes[..bytes.len() / 2]);
                    Err(f.error())
                }
                None => {
                    data.extend_from_slice(bytes);
                    Ok(())
                }
            }
        })
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let node = self.node;
        self.fs.run(OpKind::SetLen, &self.path, |st, fault| {
            if let Some(f) = fault {
                return Err(f.error());
            }
            st.file(node)?.resize(len as usize, 0);
            Ok(())
        })
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let node = self.node;
        self.fs.run(OpKind::SyncFile, &self.path, |st, fault| {
            if let Some(f) = fault {
                return Err(f.error());
            }
            if let Node::File { cur, durable } = &mut st.nodes[node] {
                *durable = cur.clone();
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_synced_data_and_entries_survive_a_power_cut() {
        let fs = SimFs::new();
        let d = Path::new("/d");
        fs.create_dir_all(d).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        fs.write_synced(&d.join("a"), b"synced").unwrap();
        fs.write(&d.join("b"), b"not synced").unwrap();
        let cut = fs.power_loss(0);
        assert!(
            !cut.exists(&d.join("a")),
            "entry not durable without a dir sync"
        );
        fs.sync_dir(d).unwrap();
        let cut = fs.power_loss(0);
        assert_eq!(cut.read(&d.join("a")).unwrap(), b"synced");
        assert_eq!(cut.read(&d.join("b")).unwrap(), b"", "data not durable");
        fs.rename(&d.join("a"), &d.join("c")).unwrap();
        let cut = fs.power_loss(0);
        assert!(cut.exists(&d.join("a")) && !cut.exists(&d.join("c")));
        assert_eq!(fs.restart().read(&d.join("c")).unwrap(), b"synced");
    }

    #[test]
    fn a_renamed_directory_keeps_its_durable_children() {
        let fs = SimFs::new();
        fs.create_dir_all(Path::new("/s/1.tmp")).unwrap();
        fs.write_synced(Path::new("/s/1.tmp/f"), b"x").unwrap();
        fs.sync_dir(Path::new("/s/1.tmp")).unwrap();
        fs.rename(Path::new("/s/1.tmp"), Path::new("/s/1")).unwrap();
        fs.sync_dir(Path::new("/s")).unwrap();
        fs.sync_dir(Path::new("/")).unwrap();
        let cut = fs.power_loss(0);
        assert_eq!(cut.read(Path::new("/s/1/f")).unwrap(), b"x");
    }

    #[test]
    fn faults_and_crash_points() {
        let fs = SimFs::new();
        fs.fail_when(|op| (op.kind == OpKind::SyncDir).then_some(Fault::Enospc));
        fs.create_dir_all(Path::new("/x")).unwrap();
        let e = fs.sync_dir(Path::new("/")).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(ENOSPC));
        fs.heal();
        fs.crash_at(fs.ops() + 1, 0);
        fs.sync_dir(Path::new("/")).unwrap();
        assert!(fs.write(Path::new("/x/f"), b"1").is_err());
        assert!(fs.crashed());
        assert!(fs.after_crash().exists(Path::new("/x")));
        assert!(!fs.after_crash().exists(Path::new("/x/f")));
    }
}

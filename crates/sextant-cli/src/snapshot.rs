//! `snapshot …`: create, list, verify, restore and delete collection snapshots; `backup …`:
//! every collection and the aliases at once. Flags and printing only; what a snapshot is and how
//! it is made consistent and restored atomically is in `sextant_engine::snapshot`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use sextant_engine::snapshot::BackupInfo;
use sextant_engine::{Database, EngineError, SnapshotInfo};

use crate::db::{open, print_json, DbArgs};

/// Snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Snapshot a collection into one file while writes to it go on. The snapshot holds the
    /// collection exactly as it was at one write (its sequence number), with a SHA-256 per
    /// file inside it.
    Create {
        /// Collection or alias.
        name: String,
        /// Snapshot file to write, or a directory to write it in [default:
        /// <data>/snapshots/<collection>/<collection>-<time>-seq<N>.snapshot].
        #[arg(long, short, value_name = "PATH")]
        output: Option<PathBuf>,
    },
    /// List snapshots with their collection, sequence number, time, points and size (reads
    /// only their headers; `verify` reads them whole).
    List {
        /// Only this collection's snapshots.
        collection: Option<String>,
        /// List the snapshot files in this directory instead of <data>/snapshots/.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Check a snapshot: every file's length and SHA-256, the manifest, and that the files
    /// make a collection. Writes nothing; a damaged snapshot names the bad file (exit code 2).
    Verify {
        /// Snapshot path, or the file name of a snapshot under <data>/snapshots/.
        snapshot: String,
    },
    /// Restore a snapshot as a collection. Every file is checked before the collection
    /// appears; a damaged or truncated snapshot leaves nothing behind.
    Restore {
        /// Snapshot path, or the file name of a snapshot under <data>/snapshots/.
        snapshot: String,
        /// Name of the restored collection [default: the collection the snapshot was taken
        /// of]. It must be free, unless --replace is given.
        name: Option<String>,
        /// Replace an existing collection of that name, atomically: it is swapped for the
        /// restored one only once that is complete (never an alias).
        #[arg(long)]
        replace: bool,
    },
    /// Delete a snapshot file.
    Delete {
        /// Snapshot path, or the file name of a snapshot under <data>/snapshots/.
        snapshot: String,
    },
}

/// A byte progress bar on stderr (hidden with `--json` or when stderr is not a terminal).
fn bar(args: &DbArgs, what: &'static str) -> ProgressBar {
    if args.json {
        return ProgressBar::hidden();
    }
    ProgressBar::new(0).with_style(
        ProgressStyle::with_template(&format!(
            "{what} {{bar:40}} {{bytes}}/{{total_bytes}}, {{bytes_per_sec}}, eta {{eta}}"
        ))
        .expect("valid template"),
    )
}

fn print_info(args: &DbArgs, verb: &str, info: &SnapshotInfo, seconds: f64) -> Result<()> {
    if args.json {
        return print_json(&json!({"snapshot": info, "seconds": seconds}));
    }
    println!(
        "{verb} {} ({} points of collection {:?} at sequence number {}, {} files, {:.1} MiB, taken {}) in {seconds:.1} s",
        info.path.display(),
        info.points,
        info.collection,
        info.seq,
        info.files,
        info.bytes as f64 / 1048576.0,
        info.created_at,
    );
    Ok(())
}

/// Runs `snapshot …`.
pub fn run_snapshot(args: &DbArgs, cmd: SnapshotCommand) -> Result<()> {
    let db = open(args)?;
    let t = Instant::now();
    match cmd {
        SnapshotCommand::Create { name, output } => {
            let bar = bar(args, "snapshot");
            let info = db.create_snapshot(&name, output.as_deref(), &mut |done, total| {
                bar.set_length(total);
                bar.set_position(done);
            })?;
            bar.finish_and_clear();
            print_info(args, "wrote", &info, t.elapsed().as_secs_f64())?;
        }
        SnapshotCommand::List { collection, dir } => {
            let listed = match &dir {
                Some(d) => db.list_snapshots_in(d)?,
                None => db.list_snapshots(collection.as_deref())?,
            };
            let listed: Vec<_> = listed
                .into_iter()
                .filter(|l| match (&collection, &l.snapshot) {
                    (Some(c), Some(s)) => &s.collection == c,
                    _ => true,
                })
                .collect();
            if args.json {
                print_json(&json!({ "snapshots": listed }))?;
            } else if listed.is_empty() {
                println!(
                    "no snapshots in {}",
                    dir.unwrap_or(db.snapshots_dir()).display()
                );
            } else {
                for l in listed {
                    match (&l.snapshot, &l.problem) {
                        (Some(s), _) => println!(
                            "{}  collection {:?}, seq {}, {} points, {:.1} MiB, {}",
                            l.path.display(),
                            s.collection,
                            s.seq,
                            s.points,
                            l.bytes as f64 / 1048576.0,
                            s.created_at
                        ),
                        (None, problem) => println!(
                            "{}  unreadable: {}",
                            l.path.display(),
                            problem.as_deref().unwrap_or("?")
                        ),
                    }
                }
            }
        }
        SnapshotCommand::Verify { snapshot } => {
            let path = db.find_snapshot(&snapshot)?;
            let bar = bar(args, "verify");
            let info = db.verify_snapshot(&path, &mut progress(&bar))?;
            bar.finish_and_clear();
            print_info(args, "verified", &info, t.elapsed().as_secs_f64())?;
        }
        SnapshotCommand::Restore {
            snapshot,
            name,
            replace,
        } => restore(args, &db, &snapshot, name, replace, t)?,
        SnapshotCommand::Delete { snapshot } => {
            let path = db.find_snapshot(&snapshot)?;
            db.delete_snapshot(&path)?;
            if args.json {
                print_json(&json!({ "deleted": path }))?;
            } else {
                println!("deleted snapshot {}", path.display());
            }
        }
    }
    Ok(())
}

fn progress(bar: &ProgressBar) -> impl FnMut(u64, u64) + '_ {
    move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    }
}

fn restore(
    args: &DbArgs,
    db: &Database,
    snapshot: &str,
    name: Option<String>,
    replace: bool,
    t: Instant,
) -> Result<()> {
    let path = db.find_snapshot(snapshot)?;
    let name = match name {
        Some(n) => n,
        None => db.snapshot_info(&path)?.collection,
    };
    let replacing = replace && db.list_collections()?.contains(&name);
    let bar = bar(args, "restore");
    db.restore_snapshot(&path, &name, replace, &mut progress(&bar))
        .map_err(|e| match e {
            EngineError::NameTaken(_) if !replace => anyhow::Error::new(e).context(format!(
                "nothing restored; give another name, or --replace to replace collection {name:?}"
            )),
            e => e.into(),
        })?;
    bar.finish_and_clear();
    let points = crate::db::collection(db, &name)?.info().points;
    if args.json {
        print_json(&json!({
            "restored": name,
            "from": path,
            "points": points,
            "replaced": replacing,
            "seconds": t.elapsed().as_secs_f64(),
        }))?;
    } else {
        println!(
            "restored {} as collection {name:?}{} ({points} points) in {:.1} s",
            path.display(),
            if replacing {
                ", replacing the collection of that name"
            } else {
                ""
            },
            t.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Whole-database backup commands.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up every collection (a snapshot each, at its own sequence number, taken while
    /// writes go on) and the aliases into a new directory.
    Create {
        /// The backup directory to make (new or empty) [default:
        /// <data>/backups/backup-<time>].
        dir: Option<PathBuf>,
    },
    /// Restore a backup: every collection and alias. Their names must be free (restore into an
    /// empty data directory); a damaged snapshot restores nothing.
    Restore {
        /// The backup directory.
        dir: PathBuf,
    },
}

/// Runs `backup …`.
pub fn run_backup(args: &DbArgs, cmd: BackupCommand) -> Result<()> {
    let db = open(args)?;
    let t = Instant::now();
    let bar = bar(args, "{msg}");
    let mut progress = |c: &str, done: u64, total: u64| {
        bar.set_message(c.to_string());
        bar.set_length(total);
        bar.set_position(done);
    };
    let (verb, info) = match cmd {
        BackupCommand::Create { dir } => {
            let dir = dir.unwrap_or_else(|| db.new_backup_dir());
            ("backed up", db.backup(&dir, &mut progress)?)
        }
        BackupCommand::Restore { dir } => ("restored", db.restore_backup(&dir, &mut progress)?),
    };
    bar.finish_and_clear();
    print_backup(args, verb, &info, t.elapsed().as_secs_f64())
}

fn print_backup(args: &DbArgs, verb: &str, info: &BackupInfo, seconds: f64) -> Result<()> {
    if args.json {
        return print_json(&json!({"backup": info, "seconds": seconds}));
    }
    let m = &info.manifest;
    println!(
        "{verb} {} collections and {} aliases ({}) in {seconds:.1} s",
        m.collections.len(),
        m.aliases.len(),
        info.dir.display(),
    );
    for c in &m.collections {
        println!(
            "  {}: {} points at sequence number {}, {:.1} MiB",
            c.name,
            c.points,
            c.seq,
            c.bytes as f64 / 1048576.0
        );
    }
    Ok(())
}

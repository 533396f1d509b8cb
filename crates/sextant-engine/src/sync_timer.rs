//! The timer behind [`Durability::Interval`](sextant_storage::wal::Durability): a thread that
//! fsyncs the WAL every interval when acknowledged batches wait for it, so that `--durability
//! 1s` bounds the loss window even when writes stop (an append only syncs when the interval
//! has passed *at the next append*). The WAL syncs once more when it is dropped (on close).
//!
//! The thread holds the writer (not the collection), so dropping the last collection handle
//! stops it: [`SyncTimer`]'s `Drop` wakes it and joins it.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::collection::Writer;

/// A running sync timer; stopped and joined on drop.
#[derive(Debug)]
pub(crate) struct SyncTimer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl SyncTimer {
    /// Starts syncing `writer`'s WAL every `every`; failures go to `errors`.
    pub(crate) fn start(
        every: Duration,
        writer: Arc<Mutex<Writer>>,
        errors: Arc<Mutex<Option<String>>>,
    ) -> SyncTimer {
        // An interval of zero syncs every append inline; the timer must not spin then.
        let every = every.max(Duration::from_millis(1));
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let signal = stop.clone();
        let thread_errors = errors.clone();
        let thread = std::thread::Builder::new()
            .name("sextant-wal-sync".into())
            .spawn(move || {
                let (flag, cv) = &*signal;
                loop {
                    {
                        // Not held while syncing, so a drop never waits for the disk here.
                        let mut stopped = flag.lock();
                        if !*stopped {
                            cv.wait_for(&mut stopped, every);
                        }
                        if *stopped {
                            break;
                        }
                    }
                    let mut w = writer.lock();
                    if w.wal.has_unsynced() || w.wal.is_poisoned() {
                        if let Err(e) = w.wal.sync() {
                            *thread_errors.lock() = Some(format!(
                                "timed WAL sync failed: {}",
                                crate::error::chain(&e)
                            ));
                        }
                    }
                }
            });
        let thread = match thread {
            Ok(t) => Some(t),
            Err(e) => {
                *errors.lock() = Some(format!(
                    "cannot start the WAL sync thread ({e}): batches are synced only at the next write after the interval and on close"
                ));
                None
            }
        };
        SyncTimer { stop, thread }
    }
}

impl Drop for SyncTimer {
    fn drop(&mut self) {
        *self.stop.0.lock() = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

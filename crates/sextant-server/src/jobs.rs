//! Background jobs: work too long for one request (a reindex re-embeds a whole collection).
//! A job runs on its own thread; `GET /jobs/{id}` reports its progress and outcome. Jobs live in
//! memory: a restart forgets them (a reindex interrupted by one continues with `resume`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::routes::ErrorDetail;

/// Finished jobs kept for `GET /jobs` (the oldest go first).
pub const KEEP_FINISHED: usize = 100;

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Still working.
    Running,
    /// Done; `result` holds its report.
    Succeeded,
    /// Stopped by an error; `error` says which.
    Failed,
}

/// A job as `GET /jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// What it does (`reindex`, `advise`).
    pub kind: String,
    /// The collection it works on.
    pub collection: String,
    /// Where it writes (a reindex's target).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Where it stands.
    pub state: JobState,
    /// Units done (chunks of a reindex).
    pub done: u64,
    /// Units in all (0 until known).
    pub total: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// Its report, once it succeeded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Its error, once it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorDetail>,
}

/// The jobs of one server.
#[derive(Debug, Default)]
pub struct Jobs {
    next: AtomicU64,
    jobs: Mutex<BTreeMap<u64, Job>>,
}

fn now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    sextant_engine::clock::format_expiry(ms)
}

impl Jobs {
    /// Registers a running job; returns it.
    pub fn start(&self, kind: &str, collection: &str, target: Option<&str>) -> Job {
        let id = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let job = Job {
            id,
            kind: kind.into(),
            collection: collection.into(),
            target: target.map(str::to_string),
            state: JobState::Running,
            done: 0,
            total: 0,
            started_at: now(),
            finished_at: None,
            result: None,
            error: None,
        };
        let mut jobs = self.jobs.lock();
        jobs.insert(id, job.clone());
        // Forget the oldest finished jobs beyond the limit.
        let finished: Vec<u64> = jobs
            .values()
            .filter(|j| j.state != JobState::Running)
            .map(|j| j.id)
            .collect();
        for id in finished
            .iter()
            .take(finished.len().saturating_sub(KEEP_FINISHED))
        {
            jobs.remove(id);
        }
        job
    }

    /// Records progress.
    pub fn progress(&self, id: u64, done: u64, total: u64) {
        if let Some(j) = self.jobs.lock().get_mut(&id) {
            j.done = done;
            j.total = total;
        }
    }

    /// Records the outcome.
    pub fn finish(&self, id: u64, outcome: Result<Value, ErrorDetail>) {
        if let Some(j) = self.jobs.lock().get_mut(&id) {
            j.finished_at = Some(now());
            match outcome {
                Ok(v) => {
                    j.state = JobState::Succeeded;
                    j.result = Some(v);
                }
                Err(e) => {
                    j.state = JobState::Failed;
                    j.error = Some(e);
                }
            }
        }
    }

    /// One job.
    pub fn get(&self, id: u64) -> Option<Job> {
        self.jobs.lock().get(&id).cloned()
    }

    /// Every job kept, oldest first.
    pub fn list(&self) -> Vec<Job> {
        self.jobs.lock().values().cloned().collect()
    }
}

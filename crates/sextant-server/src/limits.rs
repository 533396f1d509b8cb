//! Back-pressure: a bounded queue in front of the CPU work, and per-key rate limits.
//!
//! The engine is synchronous. Every call runs on tokio's blocking pool, but only `workers` at a
//! time; at most `queue_depth` more may wait, each at most `queue_timeout`. Beyond that the
//! answer is 503 with `Retry-After` at once, so overload costs neither memory nor unbounded
//! latency. A quick read (an unfiltered vector search: a fraction of a millisecond) that finds
//! a worker free at once runs on the async thread that read the request instead: handing it to
//! the blocking pool and back costs two thread wake-ups, about as much CPU as the search. The
//! runtime has one thread more than there are workers, so one is always free to read requests
//! and refuse what the queue cannot take.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// The bounded queue in front of CPU work.
#[derive(Debug)]
pub struct CpuGate {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
    queue_timeout: Duration,
    /// Whether quick reads that find a worker free run in place ([`CpuGate::with_inline`]).
    inline: bool,
}

/// Whether a job may be abandoned when the request's deadline passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Work {
    /// A read: the client gets 503 when it takes longer than the request timeout.
    Read(Duration),
    /// A read bounded to well under a millisecond: run in place when a worker is free at once,
    /// else queued as a `Read` with this timeout.
    Quick(Duration),
    /// A write: once started it always finishes and is answered (an acknowledged write is never
    /// cut short).
    Write,
}

impl CpuGate {
    /// `workers` jobs at once, `max_waiting` queued.
    pub fn new(workers: usize, max_waiting: usize, queue_timeout: Duration) -> CpuGate {
        CpuGate {
            permits: Arc::new(Semaphore::new(workers.max(1))),
            waiting: AtomicUsize::new(0),
            max_waiting,
            queue_timeout,
            inline: false,
        }
    }

    /// Lets a quick read that finds a worker free run in place. It holds that worker's permit,
    /// so at most `workers` run in place at once: give the async runtime more threads than
    /// that (`ServerConfig::async_threads`), so one stays free to read requests and refuse
    /// them when the queue is full.
    pub fn with_inline(mut self) -> CpuGate {
        self.inline = true;
        self
    }

    /// Requests waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Runs `f` on the blocking pool when a worker is free.
    pub async fn run<T, F>(&self, work: Work, f: F) -> Result<T, ApiError>
    where
        F: FnOnce() -> Result<T, ApiError> + Send + 'static,
        T: Send + 'static,
    {
        let permit = match self.permits.clone().try_acquire_owned() {
            Ok(p) if self.inline && matches!(work, Work::Quick(_)) => {
                let _permit = p;
                return f();
            }
            Ok(p) => p,
            Err(_) => {
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.max_waiting {
                    self.waiting.fetch_sub(1, Ordering::AcqRel);
                    metrics::counter!("sextant_queue_rejected_total", "reason" => "full")
                        .increment(1);
                    return Err(ApiError::overloaded(
                        "the server is at capacity (work queue full); retry later",
                        1,
                    ));
                }
                metrics::gauge!("sextant_queue_depth").set(self.queue_depth() as f64);
                let got =
                    tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
                        .await;
                self.waiting.fetch_sub(1, Ordering::AcqRel);
                metrics::gauge!("sextant_queue_depth").set(self.queue_depth() as f64);
                match got {
                    Ok(Ok(p)) => p,
                    Ok(Err(_)) => {
                        return Err(ApiError::overloaded("the server is shutting down", 5))
                    }
                    Err(_) => {
                        metrics::counter!("sextant_queue_rejected_total", "reason" => "timeout")
                            .increment(1);
                        return Err(ApiError::overloaded(
                            "the server is at capacity (waited too long for a worker); retry later",
                            1,
                        ));
                    }
                }
            }
        };
        let job = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        });
        let joined = match work {
            Work::Write => job.await,
            Work::Read(limit) | Work::Quick(limit) => {
                match tokio::time::timeout(limit, job).await {
                    Ok(j) => j,
                    Err(_) => {
                        metrics::counter!("sextant_request_timeouts_total").increment(1);
                        return Err(ApiError::overloaded(
                            format!(
                                "the request took longer than the server's limit ({} ms)",
                                limit.as_millis()
                            ),
                            1,
                        ));
                    }
                }
            }
        };
        joined.map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
    }
}

/// Token buckets per API key.
#[derive(Debug)]
pub struct RateLimiter {
    per_s: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    /// `per_s` requests per second with bursts of `burst`; `per_s == 0` turns it off.
    pub fn new(per_s: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            per_s,
            burst,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says after how many seconds to retry.
    pub fn check(&self, key: &str) -> Result<(), ApiError> {
        if self.per_s <= 0.0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut b = self.buckets.lock();
        let (tokens, at) = b.entry(key.to_string()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_s).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            metrics::counter!("sextant_rate_limited_total").increment(1);
            Err(ApiError::rate_limited(
                ((1.0 - *tokens) / self.per_s).ceil() as u64,
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_allows_the_burst_then_refuses() {
        let r = RateLimiter::new(1.0, 3.0);
        for _ in 0..3 {
            r.check("k").unwrap();
        }
        let e = r.check("k").unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        r.check("other").unwrap();
        RateLimiter::new(0.0, 0.0).check("k").unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_answers_overloaded_at_once() {
        let gate = Arc::new(CpuGate::new(1, 1, Duration::from_secs(10)));
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let busy = tokio::spawn(async move {
            g.run(Work::Write, move || {
                rx.recv().ok();
                Ok(1)
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let g = gate.clone();
        let queued = tokio::spawn(async move { g.run(Work::Write, || Ok(2)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.queue_depth(), 1);
        let refused = gate.run(Work::Write, || Ok(3)).await.unwrap_err();
        assert_eq!(
            refused.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE
        );
        tx.send(()).unwrap();
        assert_eq!(busy.await.unwrap().unwrap(), 1);
        assert_eq!(queued.await.unwrap().unwrap(), 2);
    }

    /// A quick read runs on the calling thread holding a worker's permit when one is free;
    /// when none is, it queues like any read and runs on the blocking pool.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_quick_read_runs_in_place_when_a_worker_is_free() {
        let gate = Arc::new(CpuGate::new(1, 1, Duration::from_secs(10)).with_inline());
        let here = std::thread::current().id();
        let g = gate.clone();
        let (thread, free) = gate
            .run(Work::Quick(Duration::from_secs(5)), move || {
                Ok((std::thread::current().id(), g.permits.available_permits()))
            })
            .await
            .unwrap();
        assert_eq!(
            (thread, free),
            (here, 0),
            "in place, holding the one permit"
        );
        assert_eq!(gate.permits.available_permits(), 1, "and given back");

        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let g = gate.clone();
        let busy = tokio::spawn(async move {
            g.run(Work::Write, move || {
                rx.recv().unwrap();
                Ok(())
            })
            .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let g = gate.clone();
        let queued =
            tokio::spawn(async move { g.run(Work::Quick(Duration::from_secs(5)), || Ok(7)).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(gate.queue_depth(), 1, "the quick read waits in the queue");
        let refused = gate
            .run(Work::Quick(Duration::from_secs(5)), || Ok(8))
            .await
            .unwrap_err();
        assert_eq!(
            refused.status(),
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "a full queue refuses a quick read too"
        );
        tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(
            queued.await.unwrap().unwrap(),
            7,
            "and runs once the worker is free"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_slow_read_times_out_but_a_write_finishes() {
        let gate = CpuGate::new(2, 4, Duration::from_secs(1));
        let slow = || {
            std::thread::sleep(Duration::from_millis(200));
            Ok(())
        };
        let e = gate
            .run(Work::Read(Duration::from_millis(20)), slow)
            .await
            .unwrap_err();
        assert_eq!(e.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        gate.run(Work::Write, slow).await.unwrap();
    }
}

//! Measured costs of the two ways to answer a filtered search that allows too many points for
//! an exact scan: walking the graph, or scanning the allowed points' 1-bit codes.
//!
//! Which one is cheaper depends on the data more than on the selectivity: on Fashion-MNIST a
//! walk at 10% runs at 0.4× its unfiltered speed and beats the code scan; on 2,000 tight
//! clusters of 384-d vectors it runs at 0.09× and the scan is three times faster
//! (BENCHMARKS.md, "Filtered search at every selectivity"). So an index measures both as it
//! serves them and the planner asks it which to use, with a cost model of one constant each:
//! - the code scan costs `a` per allowed point (it scores every one of them);
//! - a walk costs `b · ef / selectivity` (its beam holds `ef` matches, and to collect them it
//!   steps over about `1/selectivity` times the nodes of an unfiltered walk).
//!
//! Both constants are exponential moving averages of measured searches. A plan never measured
//! is tried first; then the cheaper prediction wins, and the other one is tried again for
//! [`EXPLORE_BURST`] searches in a row once in [`EXPLORE_EVERY`] × (predicted cost ratio)
//! searches, so that the estimates follow a changing load, at a cost of at most
//! [`EXPLORE_BURST`]/[`EXPLORE_EVERY`] of the search time. A burst, because the first search
//! of a plan after many of the other runs on cold caches (the walk's graph and codes evicted by
//! the scan's, and the other way round); and the averages fall fast (half way to a lower
//! sample) and rise slowly (a tenth of the way), because the errors are one-sided: a cold or
//! preempted search is slow, never fast. The first code scan of a segment measured 40 times
//! its steady cost on Fashion-MNIST (page faults on fresh codes).
//!
//! Time is all the model compares. Each plan's recall follows the search's `ef` (the walk's
//! beam; the code scan's bound, [`crate::storage::bound_sigmas_for`], and the candidates it
//! rescores), and a filter costs the walk little recall at equal `ef` (on the clustered set at
//! 10%: 0.71 at ef 10 against 0.72 unfiltered), so the cheaper plan at the `ef` the user chose
//! is the one to run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The plan the model does not prefer is tried once in this many searches times the ratio of
/// the predicted costs...
pub const EXPLORE_EVERY: u64 = 128;
/// ... for this many searches in a row.
pub const EXPLORE_BURST: u64 = 4;
/// Weight of a new measurement above the average in the moving averages.
const WEIGHT_UP: f64 = 0.1;
/// Weight of a new measurement below the average.
const WEIGHT_DOWN: f64 = 0.5;

/// A way to answer a filtered search past the exact-scan threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterPlan {
    /// Walk the graph, skipping nodes the filter rejects.
    Walk,
    /// Scan the allowed points' 1-bit codes and rescore what the error bound keeps.
    Codes,
}

/// The measured cost constants of one index (see the module docs). Shared by concurrent
/// searches: updates are lock-free and a lost update only delays the average.
#[derive(Debug, Default)]
pub struct PlanCosts {
    /// Nanoseconds per allowed point of a code scan (`f64` bits; 0: never measured).
    codes_per_point: AtomicU64,
    /// Nanoseconds of a walk times its selectivity over its `ef` (`f64` bits; 0: never
    /// measured).
    walk_by_share: AtomicU64,
    decisions: AtomicU64,
    /// Searches left in the current exploration burst, and its plan (0: walk, 1: codes).
    burst_left: AtomicU64,
    burst_plan: AtomicU64,
    /// The beam width of a search that does not give one.
    default_ef: usize,
}

/// What [`PlanCosts::snapshot`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PlanCostSnapshot {
    /// Nanoseconds per allowed point of a code scan, once measured.
    pub codes_ns_per_point: Option<f64>,
    /// Nanoseconds of a walk at selectivity 1 per unit of `ef` (a walk at selectivity `s`
    /// with beam `ef` is predicted to cost this times `ef / s`), once measured.
    pub walk_ns_at_full: Option<f64>,
}

fn load(a: &AtomicU64) -> Option<f64> {
    let v = f64::from_bits(a.load(Ordering::Relaxed));
    (v > 0.0).then_some(v)
}

fn blend(a: &AtomicU64, sample: f64) {
    if !(sample.is_finite() && sample > 0.0) {
        return;
    }
    let next = match load(a) {
        Some(old) if sample < old => old + WEIGHT_DOWN * (sample - old),
        Some(old) => old + WEIGHT_UP * (sample - old),
        None => sample,
    };
    a.store(next.to_bits(), Ordering::Relaxed);
}

impl PlanCosts {
    /// Costs of an index whose searches walk with beam `default_ef` unless told otherwise.
    pub fn new(default_ef: usize) -> Self {
        PlanCosts {
            default_ef: default_ef.max(1),
            ..PlanCosts::default()
        }
    }

    fn ef(&self, ef: Option<usize>) -> f64 {
        ef.unwrap_or(self.default_ef).max(1) as f64
    }

    /// The plan for a search whose filter allows `allowed` of `live` points, walking with
    /// beam `ef` (`None`: the index's default).
    pub fn choose(&self, allowed: u64, live: u64, ef: Option<usize>) -> FilterPlan {
        let n = self.decisions.fetch_add(1, Ordering::Relaxed);
        let left = self.burst_left.load(Ordering::Relaxed);
        if left > 0 {
            self.burst_left.store(left - 1, Ordering::Relaxed);
            return match self.burst_plan.load(Ordering::Relaxed) {
                0 => FilterPlan::Walk,
                _ => FilterPlan::Codes,
            };
        }
        let share = allowed as f64 / live.max(1) as f64;
        let (codes, walk) = match (load(&self.codes_per_point), load(&self.walk_by_share)) {
            (None, _) => return FilterPlan::Codes,
            (_, None) => return FilterPlan::Walk,
            (Some(a), Some(b)) => (
                a * allowed as f64,
                b * self.ef(ef) / share.max(f64::MIN_POSITIVE),
            ),
        };
        let (best, other, ratio) = if codes <= walk {
            (FilterPlan::Codes, FilterPlan::Walk, walk / codes)
        } else {
            (FilterPlan::Walk, FilterPlan::Codes, codes / walk)
        };
        let period = (EXPLORE_EVERY as f64 * ratio.clamp(1.0, 1e6)) as u64;
        if n.is_multiple_of(period.max(EXPLORE_EVERY)) {
            let code = u64::from(other == FilterPlan::Codes);
            self.burst_plan.store(code, Ordering::Relaxed);
            self.burst_left.store(EXPLORE_BURST - 1, Ordering::Relaxed);
            other
        } else {
            best
        }
    }

    /// Records how long a search that allowed `allowed` of `live` points took with `plan` and
    /// beam `ef` (`None`: the default).
    pub fn record(
        &self,
        plan: FilterPlan,
        allowed: u64,
        live: u64,
        ef: Option<usize>,
        took: Duration,
    ) {
        let ns = took.as_nanos() as f64;
        match plan {
            FilterPlan::Codes => blend(&self.codes_per_point, ns / allowed.max(1) as f64),
            FilterPlan::Walk => {
                let share = allowed as f64 / live.max(1) as f64;
                blend(&self.walk_by_share, ns * share / self.ef(ef));
            }
        }
    }

    /// The current estimates.
    pub fn snapshot(&self) -> PlanCostSnapshot {
        PlanCostSnapshot {
            codes_ns_per_point: load(&self.codes_per_point),
            walk_ns_at_full: load(&self.walk_by_share),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// How many of `n` decisions pick the codes.
    fn codes_picks(c: &PlanCosts, n: u64, allowed: u64, ef: Option<usize>) -> u64 {
        (0..n)
            .filter(|_| c.choose(allowed, 10_000, ef) == FilterPlan::Codes)
            .count() as u64
    }

    #[test]
    fn unmeasured_plans_are_tried_first_then_the_cheaper_wins() {
        let c = PlanCosts::new(10);
        assert_eq!(c.choose(1_000, 10_000, None), FilterPlan::Codes);
        c.record(FilterPlan::Codes, 1_000, 10_000, None, us(20)); // 20 ns a point
        assert_eq!(c.choose(1_000, 10_000, None), FilterPlan::Walk);
        c.record(FilterPlan::Walk, 1_000, 10_000, None, us(50)); // 500 ns at share 1, per ef
        let snap = c.snapshot();
        assert_eq!(snap.codes_ns_per_point, Some(20.0));
        assert_eq!(snap.walk_ns_at_full, Some(500.0));
        // 10%, ef 10: codes 20 µs against a 50 µs walk (ratio 2.5: a burst of 4 walks once in
        // 320 decisions); 30%: codes 60 µs against 16.7 µs (ratio 3.6: 4 codes once in 460).
        let few = codes_picks(&c, 3_200, 1_000, None);
        assert!((3_200 - 44..=3_200 - 36).contains(&few), "{few}");
        let many = codes_picks(&c, 4_600, 3_000, None);
        assert!((36..=44).contains(&many), "{many}");
        // The walk's beam counts: at 30% with ef 40 the walk costs 66.7 µs, more than codes.
        assert!(codes_picks(&c, 20, 3_000, Some(40)) >= 16);
        // At ef 30 the walk is predicted at 50 µs, the codes at 60: the walk.
        assert!(codes_picks(&c, 20, 3_000, Some(30)) <= 4);
    }

    #[test]
    fn a_spoiled_estimate_recovers_through_exploration() {
        let c = PlanCosts::new(10);
        // A cold first scan: 1,000 ns a point, where it really costs 20.
        c.record(FilterPlan::Codes, 1_000, 10_000, None, us(1_000));
        c.record(FilterPlan::Walk, 1_000, 10_000, None, us(50));
        let mut walks = 0;
        for _ in 0..20_000 {
            let plan = c.choose(1_000, 10_000, None);
            let took = match plan {
                FilterPlan::Codes => us(20),
                FilterPlan::Walk => {
                    walks += 1;
                    us(50)
                }
            };
            c.record(plan, 1_000, 10_000, None, took);
        }
        // Exploration bursts brought the estimate down (halving toward 20 ns each time): the
        // walk ran in under 5% of the searches.
        assert!(walks <= 1_000, "{walks} walks");
        assert!(codes_picks(&c, 100, 1_000, None) >= 95);
        // A slow outlier moves the average only a tenth of the way.
        c.record(FilterPlan::Codes, 1_000, 10_000, None, us(120));
        let a = c.snapshot().codes_ns_per_point.unwrap();
        assert!(a < 32.0, "{a}");
    }

    #[test]
    fn averages_move_toward_new_measurements_and_ignore_empty_ones() {
        let c = PlanCosts::new(10);
        c.record(FilterPlan::Codes, 100, 1_000, None, us(1)); // 10 ns a point
        c.record(FilterPlan::Codes, 100, 1_000, None, us(2)); // 20: a tenth of the way up
        let a = c.snapshot().codes_ns_per_point.unwrap();
        assert!((a - 11.0).abs() < 1e-9, "{a}");
        c.record(
            FilterPlan::Codes,
            100,
            1_000,
            None,
            us(0) + Duration::from_nanos(500),
        ); // 5
        let a = c.snapshot().codes_ns_per_point.unwrap();
        assert!((a - 8.0).abs() < 1e-9, "half way down: {a}");
        c.record(FilterPlan::Walk, 0, 1_000, None, us(5)); // a zero share says nothing
        assert_eq!(c.snapshot().walk_ns_at_full, None);
    }
}

//! Exact comparison of JSON numbers.
//!
//! JSON numbers reach us as `i64`, `u64` or `f64`. Comparing them as `f64` (what the filter did
//! first) merges distinct integers above 2^53: `9007199254740993` and `9007199254740992` become
//! the same double, so a filter or a tenant scope on one also matched the other. [`Num`] keeps
//! integers as integers (`i128` holds every `i64` and `u64`) and compares an integer with a
//! float by their exact real values, so the order is total, exact and consistent with equality
//! (`1` equals `1.0`; `2^53 + 1` is greater than `2^53` written as a float).

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A JSON number with an exact total order.
#[derive(Debug, Clone, Copy)]
pub enum Num {
    /// Any integer JSON can carry (`i64` or `u64`).
    Int(i128),
    /// A finite float (JSON has no NaN or infinities).
    Float(f64),
}

impl Num {
    /// The number a JSON number holds, exactly.
    pub fn of(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(0.0))
        }
    }

    /// The number in a JSON value, if it is one.
    pub fn of_value(v: &Value) -> Option<Num> {
        match v {
            Value::Number(n) => Some(Num::of(n)),
            _ => None,
        }
    }

    /// The integer, when this is one.
    pub fn as_int(self) -> Option<i128> {
        match self {
            Num::Int(i) => Some(i),
            Num::Float(_) => None,
        }
    }
}

/// Compares an integer with a float by exact value (NaN sorts above everything).
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    // Every i128 lies strictly inside ±2^127; floats beyond that are beyond every integer.
    const LIMIT: f64 = 1.7014118346046923e38; // 2^127
    if f >= LIMIT {
        return Ordering::Less;
    }
    if f < -LIMIT {
        return Ordering::Greater;
    }
    let floor = f.floor();
    // `floor` is an integer-valued float inside the i128 range, so the cast is exact.
    match i.cmp(&(floor as i128)) {
        Ordering::Equal if f > floor => Ordering::Less,
        o => o,
    }
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        match (*self, *other) {
            (Num::Int(a), Num::Int(b)) => a.cmp(&b),
            (Num::Float(a), Num::Float(b)) => a.total_cmp(&b),
            (Num::Int(a), Num::Float(b)) => cmp_int_float(a, b),
            (Num::Float(a), Num::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn n(v: Value) -> Num {
        Num::of_value(&v).unwrap()
    }

    #[test]
    fn integers_above_2_pow_53_stay_distinct() {
        let a = n(json!(9_007_199_254_740_993_u64));
        let b = n(json!(9_007_199_254_740_992_u64));
        assert_ne!(a, b);
        assert!(a > b);
        assert_eq!(n(json!(u64::MAX)), Num::Int(i128::from(u64::MAX)));
        assert!(n(json!(i64::MIN)) < n(json!(0)));
    }

    #[test]
    fn integers_and_floats_compare_by_exact_value() {
        assert_eq!(n(json!(1)), n(json!(1.0)));
        assert!(n(json!(1)) < n(json!(1.5)));
        assert!(n(json!(2)) > n(json!(1.5)));
        assert!(n(json!(-2)) < n(json!(-1.5)));
        // 2^53 + 1 as an integer is above 2^53 as a float, which a cast to f64 would call equal.
        assert!(n(json!(9_007_199_254_740_993_u64)) > n(json!(9_007_199_254_740_992.0)));
        assert!(n(json!(u64::MAX)) < n(json!(1e300)));
        assert!(n(json!(i64::MIN)) > n(json!(-1e300)));
    }

    #[test]
    fn the_order_is_total_and_consistent_on_a_grid() {
        let vals = [
            json!(-3),
            json!(-2.5),
            json!(0),
            json!(0.0),
            json!(0.25),
            json!(1),
            json!(9_007_199_254_740_992_u64),
            json!(9_007_199_254_740_992.0),
            json!(9_007_199_254_740_993_u64),
            json!(u64::MAX),
            json!(1.9e19),
        ];
        let nums: Vec<Num> = vals.iter().map(|v| n(v.clone())).collect();
        for a in &nums {
            for b in &nums {
                assert_eq!(a.cmp(b), b.cmp(a).reverse());
                for c in &nums {
                    if a <= b && b <= c {
                        assert!(a <= c, "{a:?} {b:?} {c:?}");
                    }
                }
            }
        }
    }
}

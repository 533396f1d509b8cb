//! The distance metric of a vector space, and the rules that come with it.
//!
//! Internally every index ranks by a *distance*: smaller is closer. Cosine is implemented as a dot
//! product over vectors normalised at insert and query time, and dot products are negated, so one
//! ordering serves all metrics. [`Metric::score`] turns the internal distance back into the
//! number users expect (a similarity for cosine/dot, a distance for L2/L1).

use std::fmt;
use std::str::FromStr;

/// A distance metric. The `code` of each variant is stable: it is written into files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Cosine similarity; vectors are L2-normalised on the way in, then compared by dot product.
    Cosine,
    /// Inner product (higher is more similar). Vectors are used as given.
    Dot,
    /// Euclidean distance. Ranked internally by its square.
    L2,
    /// Manhattan distance.
    L1,
    /// Hamming distance of binary vectors (every component 0 or 1, checked on the way in): the
    /// number of components that differ.
    Hamming,
    /// Jaccard distance of binary vectors (every component 0 or 1, checked on the way in):
    /// `1 − |a ∧ b| / |a ∨ b|`, 0 when both are all zeros.
    Jaccard,
}

/// Which arithmetic kernel computes the internal distance of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Negated inner product.
    NegDot,
    /// Squared Euclidean distance.
    L2Squared,
    /// Sum of absolute differences.
    L1,
    /// `1 − Σ min(aᵢ, bᵢ) / Σ max(aᵢ, bᵢ)` (0 when the denominator is 0): the Jaccard distance
    /// of 0/1 vectors.
    Jaccard,
}

impl Metric {
    /// All metrics, in code order.
    pub const ALL: [Metric; 6] = [
        Metric::Cosine,
        Metric::Dot,
        Metric::L2,
        Metric::L1,
        Metric::Hamming,
        Metric::Jaccard,
    ];

    /// Stable on-disk code of the metric.
    pub const fn code(self) -> u8 {
        match self {
            Metric::Cosine => 1,
            Metric::Dot => 2,
            Metric::L2 => 3,
            Metric::L1 => 4,
            Metric::Hamming => 5,
            Metric::Jaccard => 6,
        }
    }

    /// Inverse of [`Metric::code`].
    pub const fn from_code(code: u8) -> Option<Metric> {
        match code {
            1 => Some(Metric::Cosine),
            2 => Some(Metric::Dot),
            3 => Some(Metric::L2),
            4 => Some(Metric::L1),
            5 => Some(Metric::Hamming),
            6 => Some(Metric::Jaccard),
            _ => None,
        }
    }

    /// Whether vectors must be L2-normalised before they are stored or compared.
    pub const fn normalizes(self) -> bool {
        matches!(self, Metric::Cosine)
    }

    /// The kernel that computes this metric's internal distance.
    pub const fn kernel(self) -> KernelKind {
        match self {
            Metric::Cosine | Metric::Dot => KernelKind::NegDot,
            Metric::L2 => KernelKind::L2Squared,
            // |a − b| is 0 or 1 per component of binary vectors: L1 counts the differences.
            Metric::L1 | Metric::Hamming => KernelKind::L1,
            Metric::Jaccard => KernelKind::Jaccard,
        }
    }

    /// Whether vectors must be binary (every component 0 or 1).
    pub const fn is_binary(self) -> bool {
        matches!(self, Metric::Hamming | Metric::Jaccard)
    }

    /// Whether codes that approximate inner products or squared distances (SQ8, product
    /// quantisation, 1-bit codes) can rank this metric: cosine, dot and l2.
    pub const fn quantizable(self) -> bool {
        matches!(self.kernel(), KernelKind::NegDot | KernelKind::L2Squared)
    }

    /// Whether a larger user-facing score means "more similar".
    pub const fn higher_is_better(self) -> bool {
        matches!(self, Metric::Cosine | Metric::Dot)
    }

    /// Converts an internal distance (smaller is closer) to the user-facing score.
    ///
    /// ```
    /// use sextant_core::Metric;
    /// assert_eq!(Metric::L2.score(25.0), 5.0);
    /// assert_eq!(Metric::Cosine.score(-0.5), 0.5);
    /// ```
    pub fn score(self, distance: f32) -> f32 {
        match self.kernel() {
            KernelKind::NegDot => -distance,
            KernelKind::L2Squared => distance.max(0.0).sqrt(),
            KernelKind::L1 | KernelKind::Jaccard => distance,
        }
    }

    /// The lower-case name used in configuration, the CLI and files.
    pub const fn name(self) -> &'static str {
        match self {
            Metric::Cosine => "cosine",
            Metric::Dot => "dot",
            Metric::L2 => "l2",
            Metric::L1 => "l1",
            Metric::Hamming => "hamming",
            Metric::Jaccard => "jaccard",
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A metric name that is not one of `cosine`, `dot`, `l2`, `l1`, `hamming`, `jaccard`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown metric {0:?}: expected one of cosine, dot, l2, l1, hamming, jaccard")]
pub struct ParseMetricError(pub String);

impl FromStr for Metric {
    type Err = ParseMetricError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cosine" | "cos" | "angular" => Ok(Metric::Cosine),
            "dot" | "ip" | "inner_product" => Ok(Metric::Dot),
            "l2" | "euclidean" => Ok(Metric::L2),
            "l1" | "manhattan" => Ok(Metric::L1),
            "hamming" => Ok(Metric::Hamming),
            "jaccard" | "tanimoto" => Ok(Metric::Jaccard),
            _ => Err(ParseMetricError(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_code(m.code()), Some(m));
            assert_eq!(m.name().parse::<Metric>(), Ok(m));
            assert_eq!(m.to_string(), m.name());
        }
        assert_eq!(Metric::from_code(0), None);
    }

    #[test]
    fn unknown_metric_is_a_clear_error() {
        let err = "chebyshev".parse::<Metric>().unwrap_err();
        assert!(err.to_string().contains("chebyshev"));
        assert!(err.to_string().contains("cosine"));
    }

    #[test]
    fn scores_follow_the_metric() {
        assert_eq!(Metric::Dot.score(-3.0), 3.0);
        assert_eq!(Metric::L1.score(2.5), 2.5);
        assert_eq!(Metric::L2.score(-0.0), 0.0);
        assert!(Metric::Cosine.higher_is_better());
        assert!(!Metric::L2.higher_is_better());
        assert_eq!(Metric::Hamming.score(3.0), 3.0);
        assert_eq!(Metric::Jaccard.score(0.25), 0.25);
        assert!(!Metric::Hamming.higher_is_better() && !Metric::Jaccard.higher_is_better());
        // Codes approximate products and squared distances only.
        for m in Metric::ALL {
            assert_eq!(
                m.quantizable(),
                matches!(m, Metric::Cosine | Metric::Dot | Metric::L2),
                "{m}"
            );
            assert_eq!(
                m.is_binary(),
                matches!(m, Metric::Hamming | Metric::Jaccard)
            );
        }
    }
}

//! The index advisor as every front end asks for it: the CLI builds [`AdviseOptions`] from
//! flags, the server reads it as the body of `POST /collections/{name}/advise`, the Python
//! package from keyword arguments; the engine measures (`sextant_engine::advise`).

use serde::{Deserialize, Serialize};
use sextant_engine::advise::{AdviseReport, AdviseRequest};

use crate::error::Result;
use crate::Service;

/// What to advise on; every field optional (the engine's defaults apply).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdviseOptions {
    /// The dense space (needed when the collection has several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// Points to plan for [default: the live points now].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<u64>,
    /// RAM the whole collection may hold at `points`, in bytes [default: no limit].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_budget: Option<u64>,
    /// Recall@k to reach, in (0, 1] [default: 0.95].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_recall: Option<f64>,
    /// Neighbours per query [default: 10].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Stored vectors to build each layout over [default: 100,000, or all there are].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<usize>,
    /// Stored vectors held out as queries [default: 200]; with `query_vectors`, how many of
    /// them to use (the first ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<usize>,
    /// Your own query vectors, instead of held-out stored vectors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_vectors: Option<Vec<Vec<f32>>>,
    /// Seed of the sample [default: 42].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl AdviseOptions {
    /// The engine's request: given fields over its defaults.
    pub fn request(&self) -> AdviseRequest {
        let d = AdviseRequest::default();
        let query_vectors = self.query_vectors.as_ref().map(|qs| {
            let n = self.queries.map_or(qs.len(), |q| q.min(qs.len()));
            qs[..n].to_vec()
        });
        AdviseRequest {
            space: self.space.clone(),
            points: self.points,
            memory_budget: self.memory_budget,
            target_recall: self.target_recall.unwrap_or(d.target_recall),
            k: self.k.unwrap_or(d.k),
            sample: self.sample.unwrap_or(d.sample),
            queries: self.queries.unwrap_or(d.queries),
            query_vectors,
            seed: self.seed.unwrap_or(d.seed),
        }
    }
}

impl Service {
    /// Refuses a bad advice request (any field, the space, too few live vectors) without
    /// measuring anything.
    pub fn check_advise(&self, name: &str, opts: &AdviseOptions) -> Result<()> {
        self.collection(name)?.check_advise(&opts.request())?;
        Ok(())
    }

    /// Measures every layout on a sample of collection `name`'s vectors and recommends one;
    /// `progress` hears `(layouts done, layouts in all, what)`.
    pub fn advise(
        &self,
        name: &str,
        opts: &AdviseOptions,
        progress: &mut dyn FnMut(usize, usize, &str),
    ) -> Result<AdviseReport> {
        Ok(self.collection(name)?.advise(&opts.request(), progress)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_fill_the_engine_defaults_and_cap_given_queries() {
        let d = AdviseRequest::default();
        assert_eq!(AdviseOptions::default().request(), d);
        let o: AdviseOptions = serde_json::from_value(serde_json::json!({
            "points": 1000000, "memory_budget": 1073741824, "target_recall": 0.9,
            "query_vectors": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], "queries": 2
        }))
        .unwrap();
        let r = o.request();
        assert_eq!(
            (r.points, r.memory_budget, r.target_recall),
            (Some(1_000_000), Some(1 << 30), 0.9)
        );
        assert_eq!(r.query_vectors.unwrap().len(), 2);
        assert_eq!((r.k, r.sample, r.seed), (d.k, d.sample, d.seed));
        let e = serde_json::from_value::<AdviseOptions>(serde_json::json!({"budget": 5}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("budget"), "{e}");
    }
}

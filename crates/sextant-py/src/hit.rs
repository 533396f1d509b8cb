//! `sextant.Hit`: a search result, made here rather than in Python because a search makes k
//! of them on every call (a Python class costs about 0.35 µs per hit to build, plus the dict
//! the engine's answer would pass through; this costs a fraction of that). The HTTP backend
//! builds the same class through its constructor, so results are one type on both backends.

use numpy::PyArray1;
use pyo3::basic::CompareOp;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use serde_json::{Map, Value};
use sextant_core::PointId;
use sextant_engine::PointOut;

/// A search result: a point (vector search) or a chunk of a document (text search).
///
/// `id`, `score` (similarity for cosine/dot, distance for l2/l1, the fused or reranked score
/// for text search), `payload`, `vector` (when asked for: an array, or a dict of arrays by
/// space), and for text search `doc_id`, `sources` (the score from each source that found
/// it) and `rerank_score`. Immutable; equal when every field is equal.
#[pyclass(module = "sextant", name = "Hit", frozen, get_all)]
#[derive(Debug)]
pub struct Hit {
    id: Py<PyAny>,
    score: f64,
    payload: Option<Py<PyAny>>,
    vector: Option<Py<PyAny>>,
    doc_id: Option<Py<PyAny>>,
    sources: Option<Py<PyAny>>,
    rerank_score: Option<Py<PyAny>>,
}

/// The field names, in constructor order (`__reduce__`, `__repr__` and equality use them).
const FIELDS: [&str; 7] = [
    "id",
    "score",
    "payload",
    "vector",
    "doc_id",
    "sources",
    "rerank_score",
];

#[pymethods]
impl Hit {
    #[new]
    #[pyo3(signature = (id, score, payload=None, vector=None, doc_id=None, sources=None,
                        rerank_score=None))]
    fn new(
        id: Py<PyAny>,
        score: f64,
        payload: Option<Py<PyAny>>,
        vector: Option<Py<PyAny>>,
        doc_id: Option<Py<PyAny>>,
        sources: Option<Py<PyAny>>,
        rerank_score: Option<Py<PyAny>>,
    ) -> Self {
        Hit {
            id,
            score,
            payload,
            vector,
            doc_id,
            sources,
            rerank_score,
        }
    }

    /// The chunk's text (document collections), else a payload's `text` field.
    #[getter]
    fn text(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        let Some(p) = &self.payload else {
            return Ok(None);
        };
        let p = p.bind(py);
        match p.cast::<PyDict>() {
            Ok(d) => Ok(d.get_item("text")?.map(Bound::unbind)),
            Err(_) => Ok(p.call_method1("get", ("text",))?.extract()?),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut s = format!(
            "Hit(id={}, score={}",
            self.id.bind(py).repr()?,
            self.score.into_pyobject(py)?.repr()?
        );
        for (name, v) in [
            ("doc_id", &self.doc_id),
            ("rerank_score", &self.rerank_score),
        ] {
            if let Some(v) = v {
                s.push_str(&format!(", {name}={}", v.bind(py).repr()?));
            }
        }
        let payload = match &self.payload {
            Some(p) => p.bind(py).repr()?.to_string(),
            None => "None".to_string(),
        };
        s.push_str(&format!(", payload={payload})"));
        Ok(s)
    }

    fn __richcmp__(&self, other: &Bound<'_, PyAny>, op: CompareOp) -> PyResult<Py<PyAny>> {
        let py = other.py();
        let Ok(other) = other.cast::<Hit>() else {
            return Ok(py.NotImplemented());
        };
        let eq = match op {
            CompareOp::Eq => true,
            CompareOp::Ne => false,
            _ => return Ok(py.NotImplemented()),
        };
        let same = self.same_as(py, other.get())?;
        Ok((same == eq)
            .into_pyobject(py)?
            .to_owned()
            .into_any()
            .unbind())
    }

    /// Hits hold dicts and arrays: not hashable (as a dataclass with `eq` is not).
    fn __hash__(&self) -> PyResult<isize> {
        Err(PyTypeError::new_err("unhashable type: 'Hit'"))
    }

    /// Pickling: the constructor and its arguments.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let args = PyTuple::new(py, slf.get().fields(py)?)?;
        PyTuple::new(py, [slf.get_type().into_any(), args.into_any()])
    }
}

impl Hit {
    /// A vector search's hit from a server's JSON answer (the HTTP transport): the id as the
    /// server wrote it, the payload and vectors when present.
    pub(crate) fn from_json(
        py: Python<'_>,
        id: &Value,
        score: f64,
        payload: Option<&Value>,
        vectors: Option<&Map<String, Value>>,
    ) -> PyResult<Hit> {
        Ok(Hit {
            id: crate::to_py(py, id)?.unbind(),
            score,
            payload: match payload {
                None | Some(Value::Null) => None,
                Some(p) => Some(crate::to_py(py, p)?.unbind()),
            },
            vector: match vectors {
                Some(v) => Some(vectors_to_py(py, v)?),
                None => None,
            },
            doc_id: None,
            sources: None,
            rerank_score: None,
        })
    }

    fn fields<'py>(&self, py: Python<'py>) -> PyResult<[Bound<'py, PyAny>; 7]> {
        let opt = |v: &Option<Py<PyAny>>| match v {
            Some(v) => v.bind(py).clone(),
            None => py.None().into_bound(py),
        };
        Ok([
            self.id.bind(py).clone(),
            self.score.into_pyobject(py)?.into_any(),
            opt(&self.payload),
            opt(&self.vector),
            opt(&self.doc_id),
            opt(&self.sources),
            opt(&self.rerank_score),
        ])
    }

    fn same_as(&self, py: Python<'_>, other: &Hit) -> PyResult<bool> {
        let (a, b) = (self.fields(py)?, other.fields(py)?);
        for ((name, x), y) in FIELDS.iter().zip(&a).zip(&b) {
            let same = if *name == "vector" {
                match (x.is_none(), y.is_none()) {
                    (true, true) => true,
                    (false, false) => vectors_equal(py, x, y)?,
                    _ => false,
                }
            } else {
                x.eq(y)?
            };
            if !same {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Two vectors (arrays, or dicts of arrays by space) hold the same values.
fn vectors_equal(py: Python<'_>, x: &Bound<'_, PyAny>, y: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let (Ok(dx), Ok(dy)) = (x.cast::<PyDict>(), y.cast::<PyDict>()) {
        if dx.len() != dy.len() {
            return Ok(false);
        }
        for (k, vx) in dx.iter() {
            match dy.get_item(&k)? {
                Some(vy) if vectors_equal(py, &vx, &vy)? => {}
                _ => return Ok(false),
            }
        }
        return Ok(true);
    }
    py.import("numpy")?
        .call_method1("array_equal", (x, y))?
        .extract()
}

/// A point id as Python sees it: an int, or the id's JSON string (UUIDs in 8-4-4-4-12 form).
pub fn id_to_py(py: Python<'_>, id: &PointId) -> PyResult<Py<PyAny>> {
    Ok(match id {
        PointId::Num(n) => n.into_pyobject(py)?.into_any().unbind(),
        PointId::Str(s) => s.into_pyobject(py)?.into_any().unbind(),
        PointId::Uuid(_) => match id.to_json() {
            Value::String(s) => s.into_pyobject(py)?.into_any().unbind(),
            other => crate::to_py(py, &other)?.unbind(),
        },
    })
}

/// A point's vectors by space as one float32 array (one space) or a dict of arrays.
fn vectors_to_py(py: Python<'_>, v: &Map<String, Value>) -> PyResult<Py<PyAny>> {
    let array = |x: &Value| -> PyResult<Py<PyAny>> {
        let floats: Vec<f32> = match x {
            Value::Array(a) => a
                .iter()
                .map(|n| n.as_f64().unwrap_or(f64::NAN) as f32)
                .collect(),
            _ => return Ok(crate::to_py(py, x)?.unbind()),
        };
        Ok(PyArray1::from_vec(py, floats).into_any().unbind())
    };
    if v.len() == 1 {
        let (_, x) = v.iter().next().expect("one space");
        return array(x);
    }
    let d = PyDict::new(py);
    for (space, x) in v {
        d.set_item(space, array(x)?)?;
    }
    Ok(d.into_any().unbind())
}

/// Search results as a list of [`Hit`]s.
pub fn hits_to_py<'py>(py: Python<'py>, hits: &[PointOut]) -> PyResult<Vec<Bound<'py, Hit>>> {
    hits.iter()
        .map(|h| {
            let hit = Hit {
                id: id_to_py(py, &h.id)?,
                score: h.score.map_or(0.0, f64::from),
                payload: match &h.payload {
                    Some(p) => Some(crate::to_py(py, p)?.unbind()),
                    None => None,
                },
                vector: match &h.vectors {
                    Some(v) => Some(vectors_to_py(py, v)?),
                    None => None,
                },
                doc_id: None,
                sources: None,
                rerank_score: None,
            };
            Bound::new(py, hit)
        })
        .collect()
}

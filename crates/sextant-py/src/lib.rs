//! `sextant._native`: the engine in a Python process. The public API is the pure-Python
//! package in `python/sextant` (`sextant.open` wraps [`Database`]); this module is its
//! embedded backend. Requests and answers use the HTTP server's JSON shapes (dicts and lists
//! here), so the package's two backends differ only in transport; vectors cross as numpy
//! arrays. Every call that searches, writes, embeds or ingests releases the GIL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

use numpy::{PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use serde_json::{Map, Value};
use sextant_core::{ErrorKind, Filter, PointId};
use sextant_engine::{Collection, OrderBy, PointInput, Scope, SearchRequest, TenantId, Vectors};
use sextant_service::sources::FileDocuments;

mod hit;
mod http;
use sextant_service::{
    AskRequest, CollectionSpec, Document, EmbedKind, EmbedOptions, Error, IngestOptions,
    RegistryConfig, Service, ServiceConfig, TextSearchRequest,
};

/// The Python exception class of an error kind (defined in `sextant/errors.py`, shared with
/// the HTTP client).
fn class_of(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::NotFound => "NotFound",
        ErrorKind::AlreadyExists => "AlreadyExists",
        ErrorKind::InvalidInput => "InvalidInput",
        ErrorKind::Conflict => "Conflict",
        ErrorKind::Unauthorized => "Unauthorized",
        ErrorKind::Forbidden => "Forbidden",
        ErrorKind::Overloaded => "Overloaded",
        ErrorKind::Internal => "InternalError",
    }
}

/// A library error as the package's typed exception (`kind`, `field` and the message).
fn py_err(e: Error) -> PyErr {
    let kind = e.kind();
    let field = e.field().map(str::to_string);
    // In-process, the whole chain is the caller's own business (a server sends only the
    // public message).
    let message = sextant_service::sources::error_chain(&e);
    Python::attach(|py| {
        let made = py.import("sextant.errors").and_then(|m| {
            let cls = m.getattr(class_of(kind))?;
            cls.call1((message.clone(), field.clone()))
        });
        match made {
            Ok(exc) => PyErr::from_value(exc),
            Err(import_failed) => import_failed,
        }
    })
}

fn engine_err(e: sextant_engine::EngineError) -> PyErr {
    py_err(Error::from(e))
}

trait OrPy<T> {
    fn or_py(self) -> PyResult<T>;
}

impl<T> OrPy<T> for Result<T, Error> {
    fn or_py(self) -> PyResult<T> {
        self.map_err(py_err)
    }
}

impl<T> OrPy<T> for Result<T, sextant_engine::EngineError> {
    fn or_py(self) -> PyResult<T> {
        self.map_err(engine_err)
    }
}

/// A Python value (dict, list, str, number, bool, None) as JSON.
fn to_json(v: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    pythonize::depythonize(v).map_err(|e| {
        py_err(Error::invalid(
            field,
            format!("not representable as JSON: {e}"),
        ))
    })
}

pub(crate) fn to_py<'py>(
    py: Python<'py>,
    v: &impl serde::Serialize,
) -> PyResult<Bound<'py, PyAny>> {
    pythonize::pythonize(py, v).map_err(|e| {
        py_err(Error::new(
            ErrorKind::Internal,
            format!("answer to Python: {e}"),
        ))
    })
}

/// A request dict as one of the service's request types (unknown keys are refused, naming them).
fn request<T: serde::de::DeserializeOwned>(v: &Bound<'_, PyAny>, what: &str) -> PyResult<T> {
    let json = to_json(v, what)?;
    serde_json::from_value(json).map_err(|e| py_err(Error::invalid(what, e.to_string())))
}

fn point_id(v: &Bound<'_, PyAny>, field: &str) -> PyResult<PointId> {
    let json = to_json(v, field)?;
    PointId::from_json(&json).ok_or_else(|| {
        py_err(Error::invalid(
            field,
            format!("an id is a non-negative integer or a string, got {json}"),
        ))
    })
}

fn filter_of(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Filter>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => {
            let json = to_json(v, "filter")?;
            Filter::from_json(&json)
                .map(Some)
                .map_err(|e| py_err(Error::invalid("filter", e.to_string())))
        }
    }
}

fn scope_of(
    c: &Collection,
    tenant: Option<&Bound<'_, PyAny>>,
    all_tenants: bool,
) -> PyResult<Scope> {
    let tenant = match tenant {
        Some(t) if !t.is_none() => {
            let json = to_json(t, "tenant")?;
            // A tenant given as text is typed by the collection's tenant key ("7" is the
            // integer tenant 7 in a collection keyed by integers), as the CLI and server do.
            Some(match &json {
                Value::String(s) => TenantId::parse_for(c.schema(), s).or_py()?,
                other => TenantId::from_json(other).or_py()?,
            })
        }
        _ => None,
    };
    Scope::from_parts(tenant, all_tenants).or_py()
}

fn rows_of(a: &PyReadonlyArray2<'_, f32>, field: &str) -> PyResult<Vec<Vec<f32>>> {
    let shape = a.shape();
    let (n, d) = (shape[0], shape[1]);
    let view = a.as_array();
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<f32> = view.row(i).iter().copied().collect();
        if row.iter().any(|x| !x.is_finite()) {
            return Err(py_err(Error::invalid(
                format!("{field}[{i}]"),
                "a vector holds NaN or an infinity",
            )));
        }
        out.push(row);
    }
    debug_assert!(out.iter().all(|r| r.len() == d));
    Ok(out)
}

/// An open data directory: the engine in this process. One per directory and process (the
/// engine locks the directory).
#[pyclass(module = "sextant._native", frozen)]
struct Database {
    /// `None` once closed.
    svc: RwLock<Option<Arc<Service>>>,
}

impl Database {
    fn svc(&self) -> PyResult<Arc<Service>> {
        self.svc.read().clone().ok_or_else(|| {
            py_err(Error::invalid(
                "database",
                "the database is closed; open it again with sextant.open",
            ))
        })
    }

    fn coll(&self, name: &str) -> PyResult<Arc<Collection>> {
        self.svc()?.collection(name).or_py()
    }
}

#[pymethods]
impl Database {
    /// Opens (creating when missing) a data directory.
    #[new]
    #[pyo3(signature = (path, models=None, embedding_cache=0, threads=None, master_key_file=None))]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        models: Option<BTreeMap<String, String>>,
        embedding_cache: usize,
        threads: Option<usize>,
        master_key_file: Option<PathBuf>,
    ) -> PyResult<Self> {
        let config = ServiceConfig {
            models: RegistryConfig {
                names: models.unwrap_or_default(),
                threads,
                embedding_cache_entries: embedding_cache,
                ..Default::default()
            },
            ..Default::default()
        };
        let key = sextant_service::master_key::load(master_key_file.as_deref(), &path).or_py()?;
        let svc = py.detach(|| Service::open(&path, config)).or_py()?;
        svc.database().set_master_key(key);
        Ok(Database {
            svc: RwLock::new(Some(Arc::new(svc))),
        })
    }

    /// The data directory.
    #[getter]
    fn path(&self) -> PyResult<PathBuf> {
        Ok(self.svc()?.database().dir().to_path_buf())
    }

    fn list_collections(&self) -> PyResult<Vec<String>> {
        self.svc()?.database().list_collections().or_py()
    }

    fn aliases(&self) -> PyResult<BTreeMap<String, String>> {
        Ok(self.svc()?.database().aliases())
    }

    fn set_alias(&self, alias: &str, collection: &str) -> PyResult<()> {
        self.svc()?.database().set_alias(alias, collection).or_py()
    }

    fn delete_alias(&self, alias: &str) -> PyResult<()> {
        self.svc()?.database().delete_alias(alias).or_py()
    }

    /// Creates a vector collection from the body of `PUT /collections/{name}` (with `name`).
    fn create_collection(&self, py: Python<'_>, spec: &Bound<'_, PyAny>) -> PyResult<()> {
        let spec: CollectionSpec = request(spec, "collection")?;
        let svc = self.svc()?;
        py.detach(|| svc.create_collection(&spec).map(|_| ()))
            .or_py()
    }

    fn delete_collection(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let svc = self.svc()?;
        py.detach(|| svc.database().delete_collection(name)).or_py()
    }

    /// Whether a collection (or alias) exists.
    fn has_collection(&self, name: &str) -> PyResult<bool> {
        let svc = self.svc()?;
        let real = svc.database().resolve(name);
        Ok(svc.database().list_collections().or_py()?.contains(&real))
    }

    /// `collection info` as a dict.
    fn info<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let c = self.coll(name)?;
        let info = py.detach(|| c.info());
        let mut v = serde_json::to_value(&info)
            .map_err(|e| py_err(Error::new(ErrorKind::Internal, e.to_string())))?;
        v["name"] = Value::String(c.name().to_string());
        v["schema"] = serde_json::to_value(c.schema()).unwrap_or(Value::Null);
        to_py(py, &v)
    }

    /// Writes points: `ids` (ints or strings), `vectors` (an `n × d` float32 array, or a dict
    /// of them by space name), `payloads` (dicts or None), `expires_at` (RFC 3339 strings or
    /// None) or `ttl` (seconds from now, or None), one per id. Atomic; returns the WAL
    /// sequence.
    #[pyo3(signature = (name, ids, vectors, payloads=None, tenant=None, all_tenants=false, expires_at=None, ttl=None))]
    #[allow(clippy::too_many_arguments)]
    fn upsert(
        &self,
        py: Python<'_>,
        name: &str,
        ids: &Bound<'_, PyList>,
        vectors: &Bound<'_, PyAny>,
        payloads: Option<&Bound<'_, PyList>>,
        tenant: Option<&Bound<'_, PyAny>>,
        all_tenants: bool,
        expires_at: Option<&Bound<'_, PyList>>,
        ttl: Option<&Bound<'_, PyList>>,
    ) -> PyResult<u64> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let n = ids.len();
        let mut vecs: Vec<Vectors> = if let Ok(d) = vectors.cast::<PyDict>() {
            let mut per_point: Vec<Vec<(String, Vec<f32>)>> = vec![Vec::new(); n];
            for (k, v) in d.iter() {
                let space: String = k.extract()?;
                let arr: PyReadonlyArray2<'_, f32> = v.extract().map_err(|_| {
                    PyTypeError::new_err(format!(
                        "vectors[{space:?}] must be a 2-D float32 numpy array"
                    ))
                })?;
                let rows = rows_of(&arr, &format!("vectors.{space}"))?;
                if rows.len() != n {
                    return Err(py_err(Error::invalid(
                        format!("vectors.{space}"),
                        format!("{} rows for {n} ids", rows.len()),
                    )));
                }
                for (i, r) in rows.into_iter().enumerate() {
                    per_point[i].push((space.clone(), r));
                }
            }
            per_point
                .into_iter()
                .map(|v| Vectors::Named(v.into_iter().collect()))
                .collect()
        } else {
            let arr: PyReadonlyArray2<'_, f32> = vectors.extract().map_err(|_| {
                PyTypeError::new_err("vectors must be a 2-D float32 numpy array (rows = points)")
            })?;
            let rows = rows_of(&arr, "vectors")?;
            if rows.len() != n {
                return Err(py_err(Error::invalid(
                    "vectors",
                    format!("{} rows for {n} ids", rows.len()),
                )));
            }
            rows.into_iter().map(Vectors::Single).collect()
        };
        let mut points = Vec::with_capacity(n);
        for (i, (id, vectors)) in ids.iter().zip(vecs.drain(..)).enumerate() {
            let payload = match payloads {
                Some(p) => {
                    let item = p.get_item(i).map_err(|_| {
                        py_err(Error::invalid(
                            "payloads",
                            format!("{} payloads for {n} ids", p.len()),
                        ))
                    })?;
                    if item.is_none() {
                        Value::Object(Map::new())
                    } else {
                        to_json(&item, &format!("payloads[{i}]"))?
                    }
                }
                None => Value::Object(Map::new()),
            };
            let per_point = |list: Option<&Bound<'_, PyList>>, field: &str| -> PyResult<Value> {
                match list {
                    None => Ok(Value::Null),
                    Some(l) if l.len() != n => Err(py_err(Error::invalid(
                        field,
                        format!("{} values for {n} ids", l.len()),
                    ))),
                    Some(l) => to_json(&l.get_item(i)?, &format!("{field}[{i}]")),
                }
            };
            let e = per_point(expires_at, "expires_at")?;
            let t = per_point(ttl, "ttl")?;
            let expires_at =
                sextant_service::import::expiry(Some(&e), Some(&t), &format!("point {i}"))
                    .map_err(|err| {
                        let field = format!("{}[{i}]", err.field().unwrap_or("expires_at"));
                        py_err(err.with_field(field))
                    })?;
            points.push(PointInput {
                id: point_id(&id, &format!("ids[{i}]"))?,
                vectors,
                payload,
                sparse: Vec::new(),
                expires_at,
            });
        }
        if let Some(p) = payloads {
            if p.len() != n {
                return Err(py_err(Error::invalid(
                    "payloads",
                    format!("{} payloads for {n} ids", p.len()),
                )));
            }
        }
        py.detach(|| c.upsert(&scope, points)).or_py()
    }

    /// Nearest neighbours of a vector, as `sextant.Hit`s, best first.
    #[pyo3(signature = (name, vector, k=10, ef=None, filter=None, space=None, with_payload=true,
                        with_vector=false, tenant=None, all_tenants=false, exact=false,
                        nprobe=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        vector: PyReadonlyArray1<'py, f32>,
        k: usize,
        ef: Option<usize>,
        filter: Option<&Bound<'py, PyAny>>,
        space: Option<String>,
        with_payload: bool,
        with_vector: bool,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
        exact: bool,
        nprobe: Option<usize>,
    ) -> PyResult<Vec<Bound<'py, hit::Hit>>> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let filter = filter_of(filter)?;
        let vector: Vec<f32> = match vector.as_slice() {
            Ok(s) => s.to_vec(),
            Err(_) => vector.as_array().iter().copied().collect(),
        };
        let req = SearchRequest {
            space,
            vector,
            k,
            ef,
            nprobe,
            filter,
            scope,
            with_payload,
            with_vector,
            exact_threshold: exact.then_some(u64::MAX),
        };
        let resp = py.detach(|| c.search(req)).or_py()?;
        hit::hits_to_py(py, &resp.hits)
    }

    /// Points by id (missing ids are skipped), in the order asked.
    #[pyo3(signature = (name, ids, with_payload=true, with_vector=false, tenant=None,
                        all_tenants=false))]
    #[allow(clippy::too_many_arguments)]
    fn get<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        ids: &Bound<'py, PyList>,
        with_payload: bool,
        with_vector: bool,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let ids = ids
            .iter()
            .enumerate()
            .map(|(i, id)| point_id(&id, &format!("ids[{i}]")))
            .collect::<PyResult<Vec<_>>>()?;
        let pts = py
            .detach(|| c.get(&scope, &ids, with_payload, with_vector))
            .or_py()?;
        points_to_py(py, &pts)
    }

    /// Deletes points by id, or every point matching a filter; returns how many.
    #[pyo3(signature = (name, ids=None, filter=None, tenant=None, all_tenants=false))]
    fn delete(
        &self,
        py: Python<'_>,
        name: &str,
        ids: Option<&Bound<'_, PyList>>,
        filter: Option<&Bound<'_, PyAny>>,
        tenant: Option<&Bound<'_, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<usize> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let filter = filter_of(filter)?;
        match (ids, filter) {
            (Some(ids), None) => {
                let ids = ids
                    .iter()
                    .enumerate()
                    .map(|(i, id)| point_id(&id, &format!("ids[{i}]")))
                    .collect::<PyResult<Vec<_>>>()?;
                py.detach(|| c.delete(&scope, ids)).or_py()
            }
            (None, Some(f)) => py.detach(|| c.delete_by_filter(&scope, &f)).or_py(),
            _ => Err(py_err(Error::invalid(
                "ids",
                "give ids or a filter (exactly one)",
            ))),
        }
    }

    #[pyo3(signature = (name, filter=None, tenant=None, all_tenants=false))]
    fn count(
        &self,
        py: Python<'_>,
        name: &str,
        filter: Option<&Bound<'_, PyAny>>,
        tenant: Option<&Bound<'_, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<u64> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let filter = filter_of(filter)?;
        py.detach(|| c.count(&scope, filter.as_ref())).or_py()
    }

    /// A page of points: `(points, next_offset)`.
    #[pyo3(signature = (name, filter=None, limit=100, offset=None, order_by=None,
                        descending=false, with_payload=true, tenant=None, all_tenants=false))]
    #[allow(clippy::too_many_arguments)]
    fn scroll<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        filter: Option<&Bound<'py, PyAny>>,
        limit: usize,
        offset: Option<String>,
        order_by: Option<String>,
        descending: bool,
        with_payload: bool,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<(Bound<'py, PyAny>, Option<String>)> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let filter = filter_of(filter)?;
        let order = order_by.map(|key| OrderBy { key, descending });
        let page = py
            .detach(|| {
                c.scroll(
                    &scope,
                    filter.as_ref(),
                    limit,
                    offset.as_deref(),
                    order.as_ref(),
                    with_payload,
                )
            })
            .or_py()?;
        Ok((points_to_py(py, &page.points)?, page.next_offset))
    }

    /// Tenants of a multi-tenant collection with their point counts.
    fn tenants<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let c = self.coll(name)?;
        let t = c.tenants().or_py()?;
        let list: Vec<Value> = t
            .into_iter()
            .map(|(t, n)| serde_json::json!({"tenant": t.to_json(), "points": n}))
            .collect();
        to_py(py, &list)
    }

    fn drop_tenant(
        &self,
        py: Python<'_>,
        name: &str,
        tenant: &Bound<'_, PyAny>,
    ) -> PyResult<usize> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, Some(tenant), false)?;
        let Scope::Tenant(t) = scope else {
            return Err(py_err(Error::invalid("tenant", "give a tenant")));
        };
        py.detach(|| c.drop_tenant(&t)).or_py()
    }

    /// Flushes, merges and builds indexes now.
    fn optimize(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let c = self.coll(name)?;
        py.detach(|| c.optimize()).or_py()
    }

    /// An evaluation (the body of `POST /collections/{name}/eval`, without the tenant): the
    /// report, with its Markdown in `markdown`.
    #[pyo3(signature = (name, request, tenant=None, all_tenants=false))]
    fn eval<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts: sextant_service::eval::EvalOptions = self::request(request, "eval")?;
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let svc = self.svc()?;
        let report = py
            .detach(|| svc.evaluate_options(name, &scope, &opts, &mut |_, _, _| {}))
            .or_py()?;
        let mut v = serde_json::to_value(&report)
            .map_err(|e| py_err(Error::new(ErrorKind::Internal, e.to_string())))?;
        v["markdown"] = Value::String(report.markdown());
        to_py(py, &v)
    }

    /// Re-embeds a document collection with another model into a new one (the body of
    /// `POST /collections/{name}/reindex`); blocks until done and returns the report.
    fn reindex<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts: sextant_service::ReindexOptions = self::request(request, "reindex")?;
        let svc = self.svc()?;
        let report = py
            .detach(|| svc.reindex(name, &opts, &mut |_, _| {}))
            .or_py()?;
        to_py(py, &report)
    }

    /// Measures every index layout on a sample of the collection's vectors and recommends one
    /// (the body of `POST /collections/{name}/advise`); blocks until done, returns the advice.
    fn advise<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts: sextant_service::advise::AdviseOptions = self::request(request, "advise")?;
        let svc = self.svc()?;
        let report = py
            .detach(|| svc.advise(name, &opts, &mut |_, _, _| {}))
            .or_py()?;
        to_py(py, &report)
    }

    /// The drift report, or None when the collection is not monitored.
    fn drift<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let svc = self.svc()?;
        let d = py.detach(|| svc.drift_status(name)).or_py()?;
        to_py(py, &d)
    }

    /// Pins the drift reference (`{"shift_alarm"?, "precision_alarm"?}`).
    fn drift_pin<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: sextant_service::drift::PinRequest = self::request(request, "pin")?;
        let svc = self.svc()?;
        let r = py.detach(|| svc.drift_pin(name, &req)).or_py()?;
        to_py(py, &r)
    }

    /// Adds a canary query (`{"name", "text" or "vector", "space"?, "k"?, "expected"?}`).
    fn drift_add_canary<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: sextant_service::drift::CanaryRequest = self::request(request, "canary")?;
        let svc = self.svc()?;
        let c = py.detach(|| svc.drift_add_canary(name, &req)).or_py()?;
        to_py(py, &c)
    }

    /// The canary queries.
    fn drift_canaries<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let c = self.coll(name)?;
        to_py(py, &c.drift_canaries())
    }

    /// Removes a canary query (NotFound when there is none of that name).
    fn drift_remove_canary(&self, py: Python<'_>, name: &str, canary: &str) -> PyResult<()> {
        let svc = self.svc()?;
        py.detach(|| svc.drift_remove_canary(name, canary)).or_py()
    }

    /// Runs the canaries, records the check, returns the report.
    fn drift_check<'py>(&self, py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
        let svc = self.svc()?;
        let d = py.detach(|| svc.drift_check(name)).or_py()?;
        to_py(py, &d)
    }

    /// A text query (the body of `POST /collections/{name}/query`, without the tenant):
    /// documents with their best chunks.
    #[pyo3(signature = (name, request, tenant=None, all_tenants=false))]
    fn query<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: TextSearchRequest = self::request(request, "query")?;
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let svc = self.svc()?;
        let hits = py.detach(|| svc.text_search(name, &scope, &req)).or_py()?;
        to_py(py, &hits)
    }

    /// Retrieval → cited context (→ an LLM answer): the service's `AskRequest` as a dict.
    #[pyo3(signature = (name, request, tenant=None, all_tenants=false))]
    fn ask<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        request: &Bound<'py, PyAny>,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let req: AskRequest = self::request(request, "ask")?;
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let svc = self.svc()?;
        let out = py.detach(|| svc.ask(name, &scope, &req)).or_py()?;
        to_py(py, &out)
    }

    /// Ingests documents given as dicts `{"id", "text", "title"?, "fields"?}`, creating the
    /// document collection from `options` (the ingest options) on first use.
    #[pyo3(signature = (name, documents, options=None, tenant=None, all_tenants=false))]
    fn add_documents<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        documents: &Bound<'py, PyList>,
        options: Option<&Bound<'py, PyAny>>,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts: IngestOptions = match options {
            Some(o) if !o.is_none() => request(o, "options")?,
            _ => IngestOptions::default(),
        };
        let docs = documents
            .iter()
            .enumerate()
            .map(|(i, d)| document(&d, i))
            .collect::<PyResult<Vec<_>>>()?;
        let scope = self.ingest_scope(name, tenant, all_tenants)?;
        let svc = self.svc()?;
        let report = py
            .detach(|| {
                svc.ingest(
                    name,
                    &scope,
                    &opts,
                    &mut docs.into_iter().map(Ok),
                    &mut |_| {},
                )
            })
            .or_py()?;
        to_py(py, &report)
    }

    /// Ingests files and directories (text, Markdown, HTML, PDF), as `sextant ingest` does.
    /// `progress` (a callable) gets the number of documents written so far, at most once a
    /// second and at the end.
    #[pyo3(signature = (name, paths, options=None, tenant=None, all_tenants=false,
                        progress=None))]
    #[allow(clippy::too_many_arguments)]
    fn ingest_paths<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        paths: Vec<PathBuf>,
        options: Option<&Bound<'py, PyAny>>,
        tenant: Option<&Bound<'py, PyAny>>,
        all_tenants: bool,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts: IngestOptions = match options {
            Some(o) if !o.is_none() => request(o, "options")?,
            _ => IngestOptions::default(),
        };
        for p in &paths {
            if !Path::new(p).exists() {
                return Err(py_err(Error::not_found(format!(
                    "no such file or directory: {}",
                    p.display()
                ))));
            }
        }
        let scope = self.ingest_scope(name, tenant, all_tenants)?;
        let svc = self.svc()?;
        let report = py
            .detach(|| {
                let mut docs = FileDocuments::new(paths);
                let mut last = std::time::Instant::now();
                let mut tick = |s: &sextant_service::IngestStats| {
                    if let Some(cb) = &progress {
                        if last.elapsed().as_secs_f64() >= 1.0 {
                            last = std::time::Instant::now();
                            Python::attach(|py| {
                                let _ = cb.call1(py, (s.documents,));
                            });
                        }
                    }
                };
                svc.ingest(name, &scope, &opts, &mut docs, &mut tick)
            })
            .or_py()?;
        if let Some(cb) = &progress {
            cb.call1(py, (report.documents,))?;
        }
        to_py(py, &report)
    }

    /// Deletes a document's chunks; returns how many.
    #[pyo3(signature = (name, doc_id, tenant=None, all_tenants=false))]
    fn delete_document(
        &self,
        py: Python<'_>,
        name: &str,
        doc_id: &str,
        tenant: Option<&Bound<'_, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<usize> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let svc = self.svc()?;
        py.detach(|| svc.delete_document(name, &scope, doc_id))
            .or_py()
    }

    /// Deletes every document ingested longer ago than `older_than` (`30d`, `12h`, `90m`,
    /// `45s`); returns `{deleted_documents, deleted_chunks, cutoff}`.
    #[pyo3(signature = (name, older_than, tenant=None, all_tenants=false))]
    fn delete_older_than<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        older_than: &str,
        tenant: Option<&Bound<'_, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let c = self.coll(name)?;
        let scope = scope_of(&c, tenant, all_tenants)?;
        let svc = self.svc()?;
        let r = py
            .detach(|| svc.delete_older_than(name, &scope, older_than))
            .or_py()?;
        to_py(
            py,
            &serde_json::json!({
                "deleted_documents": r.documents,
                "deleted_chunks": r.points,
                "cutoff": sextant_engine::clock::format_expiry(r.cutoff_ms),
            }),
        )
    }

    /// Embeds texts: an `n × d` float32 array.
    #[pyo3(signature = (texts, model, kind="plain", dimensions=None))]
    fn embed<'py>(
        &self,
        py: Python<'py>,
        texts: Vec<String>,
        model: &str,
        kind: &str,
        dimensions: Option<usize>,
    ) -> PyResult<Bound<'py, PyArray2<f32>>> {
        let kind = match kind {
            "query" => EmbedKind::Query,
            "passage" => EmbedKind::Passage,
            "plain" => EmbedKind::Plain,
            other => {
                return Err(py_err(Error::invalid(
                    "kind",
                    format!("expected query, passage or plain, got {other:?}"),
                )))
            }
        };
        let opts = EmbedOptions {
            kind,
            dimensions,
            precision: None,
        };
        let n = texts.len();
        let svc = self.svc()?;
        let e = py
            .detach(|| svc.models().embed(model, &texts, &opts))
            .or_py()?;
        let dim = e.data.len().checked_div(n).unwrap_or(e.dim);
        let flat = numpy::PyArray1::from_vec(py, e.data);
        flat.reshape([n, dim])
    }

    /// Cross-encoder scores of documents against a query, in input order.
    fn rerank(
        &self,
        py: Python<'_>,
        query: &str,
        documents: Vec<String>,
        model: &str,
    ) -> PyResult<Vec<f32>> {
        let svc = self.svc()?;
        py.detach(|| svc.rerank(model, query, &documents)).or_py()
    }

    /// Syncs every open collection's WAL, then lets the database go: background merges
    /// finish and the directory's lock is released once calls still running on other threads
    /// return. Later calls raise; closing twice is a no-op.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let Some(svc) = self.svc.write().take() else {
            return Ok(());
        };
        py.detach(move || {
            let db = svc.database();
            for n in db.list_collections()? {
                if let Ok(c) = db.collection(&n) {
                    c.sync()?;
                }
            }
            drop(svc);
            Ok::<_, sextant_engine::EngineError>(())
        })
        .or_py()
    }

    /// Whether `close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.svc.read().is_none()
    }
}

impl Database {
    fn ingest_scope(
        &self,
        name: &str,
        tenant: Option<&Bound<'_, PyAny>>,
        all_tenants: bool,
    ) -> PyResult<Scope> {
        match self.svc()?.database().collection(name) {
            Ok(c) => scope_of(&c, tenant, all_tenants),
            // A collection made by this ingest: a tenant is taken as given (its type follows
            // the tenant key the options name).
            Err(_) => {
                let t = match tenant {
                    Some(t) if !t.is_none() => {
                        Some(TenantId::from_json(&to_json(t, "tenant")?).or_py()?)
                    }
                    _ => None,
                };
                Scope::from_parts(t, all_tenants).or_py()
            }
        }
    }
}

fn document(d: &Bound<'_, PyAny>, i: usize) -> PyResult<Document> {
    let v = to_json(d, &format!("documents[{i}]"))?;
    let Value::Object(mut m) = v else {
        return Err(py_err(Error::invalid(
            format!("documents[{i}]"),
            "a document is a dict with id and text",
        )));
    };
    let id = match m.remove("id") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(py_err(Error::invalid(
                format!("documents[{i}].id"),
                "a document id is a non-empty string or a number",
            )))
        }
    };
    // A string field of a document; absent or None is empty.
    let mut string = |key: &str| match m.remove(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Ok(String::new()),
        Some(_) => Err(py_err(Error::invalid(
            format!("documents[{i}].{key}"),
            format!("{key} must be a string"),
        ))),
    };
    let text = string("text")?;
    let title = string("title")?;
    let fields = match m.remove("fields") {
        Some(Value::Object(f)) => f,
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return Err(py_err(Error::invalid(
                format!("documents[{i}].fields"),
                "fields must be a dict",
            )))
        }
    };
    if let Some(k) = m.keys().next() {
        return Err(py_err(Error::invalid(
            format!("documents[{i}].{k}"),
            "unknown key: a document has id, text, title and fields",
        )));
    }
    Ok(Document {
        id,
        title,
        text,
        fields,
        ..Default::default()
    })
}

fn points_to_py<'py>(
    py: Python<'py>,
    hits: &[sextant_engine::PointOut],
) -> PyResult<Bound<'py, PyAny>> {
    to_py(py, &hits)
}

/// IR metrics of a run against judgements: `run` maps query id → {doc id: score}, `qrels`
/// query id → {doc id: grade}. nDCG@10, Recall@100, MRR@10 and MAP over the judged queries.
#[pyfunction]
fn evaluate<'py>(
    py: Python<'py>,
    run: BTreeMap<String, BTreeMap<String, f32>>,
    qrels: BTreeMap<String, BTreeMap<String, u32>>,
) -> PyResult<Bound<'py, PyAny>> {
    let run: sextant_eval::ir::Run = run
        .into_iter()
        .map(|(q, docs)| (q, docs.into_iter().collect()))
        .collect();
    let qrels: sextant_eval::ir::Qrels = qrels
        .into_iter()
        .map(|(q, rel)| (q, rel.into_iter().collect()))
        .collect();
    let m = sextant_eval::ir::evaluate(&run, &qrels);
    to_py(py, &m)
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Database>()?;
    m.add_class::<hit::Hit>()?;
    m.add_class::<http::HttpTransport>()?;
    m.add_function(wrap_pyfunction!(evaluate, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // What a directory walk reads (text formats and pictures): the HTTP client sends these.
    m.add("INGEST_EXTENSIONS", sextant_service::sources::extensions())?;
    Ok(())
}

"""The HTTP backend: a client of ``sextant serve`` (made by :func:`sextant.connect`).

It takes the calls of the backend protocol (``_native.pyi``'s ``Database``) and answers with the
same shapes, which are the server's JSON, so :mod:`sextant._api` behaves the same on either
backend. Reads (searches, text queries, get, count, scroll, collection info; embed and rerank,
which change nothing either) to an ``http://`` server go through the extension module's
transport (``_native.HttpTransport``: a pooled keep-alive client in Rust that releases the GIL
and, for a vector search, writes the body from the array and builds the hits itself); everything else, and every request to an ``https://``
server, through the standard library: one persistent keep-alive connection per thread
(``http.client``; TLS with the system's certificate store), opened on first use and opened
again, once, when the server has dropped an idle connection. A read is retried once, too,
when its connection dropped without an answer.

Errors are the package's exceptions: the server's ``{"error": {"code", "message", "field"}}``
becomes ``errors.BY_KIND[code](message, field)`` (``Overloaded`` carries ``Retry-After``); no
answer at all (refused, reset, timed out) or an answer that is not the server's JSON raises
:class:`TransportError`.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union
from urllib.parse import quote, urlencode, urlsplit

import numpy as np

from . import __version__
from . import _native
from ._api import INGEST_OPTIONS, Hit, _hit
from .errors import BY_KIND, Conflict, InternalError, InvalidInput, NotFound, Overloaded, SextantError

#: The environment variable an API key is read from when none is given.
API_KEY_ENV = "SEXTANT_API_KEY"

#: File extensions sent when a directory is walked: the engine's own list (``sources::extensions``,
#: every text format and the pictures), so the client never drifts from the server.
EXTENSIONS = frozenset(_native.INGEST_EXTENSIONS)

#: An ingest of files is sent in requests of at most this many files…
UPLOAD_BATCH_FILES = 64
#: …and about this many bytes (a larger file goes alone), so ``progress`` moves and no request
#: nears the server's ``limits.max_upload_bytes``.
UPLOAD_BATCH_BYTES = 32 << 20

#: Ingest options a server takes as query parameters (``IngestQuery``): all but the two that
#: tune the server's own embedding (its configuration sets them).
_SERVER_INGEST_OPTIONS = tuple(o for o in INGEST_OPTIONS if o not in ("precision", "batch"))

#: Retrieval options of a server's ``ask`` (``AskBody``'s flat fields).
_ASK_RETRIEVAL = ("mode", "sources", "weights", "fusion", "rerank", "rerank_top", "source_k", "mmr", "group_size", "filter")

#: Error classes of an error answer that is not the server's JSON (a proxy's page, say).
_BY_STATUS = {400: InvalidInput, 404: NotFound, 409: Conflict, 413: InvalidInput, 415: InvalidInput, 429: Overloaded, 503: Overloaded}

#: A dropped keep-alive connection: the request never reached the server, so it is sent again.
_DROPPED = (http.client.RemoteDisconnected, http.client.BadStatusLine, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class TransportError(SextantError, ConnectionError):
    """No answer from the server (refused, reset, timed out), or an answer that is not the
    server's JSON. ``kind`` is ``"transport"``; ``status`` is the HTTP status when one came."""

    kind = "transport"
    status = 0


def _json_default(o: Any) -> Any:
    """numpy scalars and arrays in ids, payloads and filters, as JSON."""
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not representable as JSON")


def _dumps(v: Any, what: str) -> bytes:
    try:
        return json.dumps(v, default=_json_default, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as e:
        raise InvalidInput(f"{what}: not representable as JSON: {e}", what) from e


def _seg(s: Any) -> str:
    """One URL path segment: every reserved character quoted, ``/`` included."""
    return quote(str(s), safe="")


def _retry_after(v: Optional[str]) -> Optional[float]:
    try:
        return float(v) if v is not None else None
    except ValueError:
        return None  # an HTTP date: the server sends seconds; a proxy may not


def _scope(body: Dict[str, Any], tenant: Any, all_tenants: bool) -> Dict[str, Any]:
    if tenant is not None:
        body["tenant"] = tenant
    if all_tenants:
        body["all_tenants"] = True
    return body


def _scope_query(query: Dict[str, str], tenant: Any, all_tenants: bool) -> Dict[str, str]:
    if tenant is not None:
        query["tenant"] = str(tenant)
    if all_tenants:
        query["all_tenants"] = "true"
    return query


def _rows(vectors: Any, n: int, what: str) -> List[List[float]]:
    """An ``n × d`` array as JSON rows; NaN and infinities refused as the engine does."""
    a = np.asarray(vectors, dtype=np.float32)
    if a.ndim != 2 or a.shape[0] != n:
        raise InvalidInput(f"{what}: {a.shape[0] if a.ndim else 0} rows for {n} ids", what)
    bad = ~np.isfinite(a).all(axis=1)
    if bad.any():
        raise InvalidInput(f"{what}[{int(np.argmax(bad))}]: a vector holds NaN or an infinity", f"{what}[{int(np.argmax(bad))}]")
    return a.tolist()


def _unique_field(base: str, taken: Iterable[str]) -> str:
    """``base``, or ``base`` with underscores appended, whichever no document's fields use."""
    taken = set(taken)
    name = base
    while name in taken:
        name += "_"
    return name


def _walk(root: str) -> List[str]:
    """The files an ingest reads under ``root`` (itself when a file), sorted: known extensions,
    hidden entries skipped — as the server's ``sources::walk``."""
    if os.path.isfile(root):
        return [root]
    out: List[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and os.path.splitext(f)[1][1:].lower() in EXTENSIONS:
                out.append(os.path.join(dirpath, f))
    return sorted(out)


def _merge_reports(reports: List[Dict[str, Any]], seconds: float) -> Dict[str, Any]:
    """The ingest reports of several requests as one."""
    counts = ("documents", "replaced", "unchanged", "chunks", "duplicates", "near_duplicates", "skipped_duplicates", "skipped_images")
    out: Dict[str, Any] = {k: 0 for k in counts}
    out["redactions"] = {}
    for r in reports:
        for k in counts:
            out[k] += r.get(k, 0)
        for kind, n in (r.get("redactions") or {}).items():
            out["redactions"][kind] = out["redactions"].get(kind, 0) + n
    out["seconds"] = seconds
    out["documents_per_s"] = out["documents"] / seconds if seconds > 0 else 0.0
    out["chunks_per_s"] = out["chunks"] / seconds if seconds > 0 else 0.0
    return out


class _Multipart:
    """A ``multipart/form-data`` body of files, streamed from disk (never held whole); it can
    be iterated again when a request is resent."""

    CHUNK = 1 << 20

    def __init__(self, files: List[str]):
        self.boundary = "sextant-" + uuid.uuid4().hex
        self.files = files
        self._heads = [
            (
                f"--{self.boundary}\r\n"
                f'Content-Disposition: form-data; name="file"; filename="{self._quoted(os.path.basename(f))}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n"
            ).encode()
            for f in files
        ]
        self._tail = f"--{self.boundary}--\r\n".encode()
        self.length = sum(len(h) + os.path.getsize(f) + 2 for h, f in zip(self._heads, files)) + len(self._tail)

    @staticmethod
    def _quoted(name: str) -> str:
        return name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ")

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __iter__(self) -> Iterator[bytes]:
        for head, path in zip(self._heads, self.files):
            yield head
            with open(path, "rb") as fh:
                while True:
                    b = fh.read(self.CHUNK)
                    if not b:
                        break
                    yield b
            yield b"\r\n"
        yield self._tail


class HttpBackend:
    """The backend protocol over a server's REST routes. Thread-safe: each thread has its own
    keep-alive connection."""

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 60.0):
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInput(f"url: expected http://HOST[:PORT] or https://…, got {url!r}", "url")
        self.url = url
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        try:
            self._port = parts.port or (443 if self._https else 80)
        except ValueError as e:
            raise InvalidInput(f"url: {e}", "url") from e
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        self._headers = {"User-Agent": f"sextant-python/{__version__}", "Accept": "application/json"}
        if key:
            self._headers["Authorization"] = f"Bearer {key}"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set = set()
        self._closed = False
        # Collection name -> (target, the request's name in errors) of its vector search.
        self._search_targets: Dict[str, Tuple[str, str]] = {}
        self._native = (
            None
            if self._https
            else _native.HttpTransport(
                f"http://{f'[{self._host}]' if ':' in self._host else self._host}:{self._port}", list(self._headers.items()), timeout
            )
        )

    @property
    def path(self) -> str:
        return self.url

    # ---- transport -----------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise InvalidInput("database: the connection is closed; connect again with sextant.connect", "database")
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout)
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.conn = conn
            self._local.used = False
            with self._lock:
                self._open.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            with self._lock:
                self._open.discard(conn)
            self._local.conn = None

    def _request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Optional[Mapping[str, str]] = None,
        raw: Union[None, bytes, _Multipart] = None,
        content_type: str = "application/json",
        read: bool = False,
    ) -> Any:
        """Sends a request (``body`` as JSON, or ``raw`` bytes or a multipart body) and returns
        the answer's JSON; error answers raise the package's exceptions. ``read``: the request
        changes nothing, so it may go through the native transport and be sent twice."""
        if read and raw is None and self._native is not None:
            return self._read(method, path, body, query)
        target = self._prefix + path
        if query:
            target += "?" + urlencode(query)
        headers = dict(self._headers)
        data: Any = None
        if raw is not None:
            data = raw
            headers["Content-Type"] = raw.content_type if isinstance(raw, _Multipart) else content_type
            headers["Content-Length"] = str(raw.length if isinstance(raw, _Multipart) else len(raw))
        elif body is not None:
            data = _dumps(body, "body")
            headers["Content-Type"] = content_type
        elif method in ("POST", "PUT"):
            headers["Content-Length"] = "0"
        where = f"{method} {self.url.rstrip('/')}{path}"
        for attempt in (0, 1):
            conn = self._connection()
            reused = self._local.used
            try:
                conn.request(method, target, body=iter(data) if isinstance(data, _Multipart) else data, headers=headers)
                resp = conn.getresponse()
                payload = resp.read()
            except _DROPPED as e:
                self._drop()
                if reused and attempt == 0:
                    continue  # an idle connection the server closed: once more on a new one
                raise TransportError(f"{where}: the server closed the connection ({e or type(e).__name__})") from e
            except socket.timeout as e:
                self._drop()
                raise TransportError(f"{where}: no answer within {self._timeout} s (timeout)") from e
            except (OSError, http.client.HTTPException) as e:
                self._drop()
                raise TransportError(f"{where}: cannot reach the server: {e}") from e
            self._local.used = True
            if resp.will_close:
                self._drop()
            return self._answer(status=resp.status, reason=resp.reason, content_type=resp.getheader("Content-Type"),
                                retry_after=resp.getheader("Retry-After"), payload=payload, where=where)
        raise AssertionError("unreachable")  # pragma: no cover

    def _native_call(self, where: str, send: Callable[[], Tuple[int, Optional[str], Optional[str], Any]]) -> Any:
        """Runs a read through the native transport: once more after a dropped connection;
        answers that are not a search's hits go through :meth:`_answer`."""
        if self._closed:
            raise InvalidInput("database: the connection is closed; connect again with sextant.connect", "database")
        for attempt in (0, 1):
            try:
                status, content_type, retry_after, out = send()
            except ConnectionResetError as e:
                if attempt == 0:
                    continue
                raise TransportError(f"{where}: the server closed the connection ({e})") from e
            except TimeoutError as e:
                raise TransportError(f"{where}: no answer within {self._timeout} s (timeout)") from e
            except OSError as e:
                raise TransportError(f"{where}: cannot reach the server: {e}") from e
            if not isinstance(out, bytes):
                return out
            return self._answer(status=status, reason=http.client.responses.get(status, ""), content_type=content_type,
                                retry_after=retry_after, payload=out, where=where)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, method: str, path: str, body: Any, query: Optional[Mapping[str, str]]) -> Any:
        target = self._prefix + path
        if query:
            target += "?" + urlencode(query)
        data = None if body is None else _dumps(body, "body")
        where = f"{method} {self.url.rstrip('/')}{path}"
        native = self._native
        return self._native_call(where, lambda: native.request(method, target, data))

    def _answer(
        self,
        *,
        status: int,
        reason: str,
        content_type: Optional[str],
        retry_after: Optional[str],
        payload: bytes,
        where: str,
    ) -> Any:
        try:
            doc = json.loads(payload) if payload else None
        except ValueError:
            doc = None
            parsed = False
        else:
            parsed = True
        if 200 <= status < 300:
            if not parsed:
                raise TransportError(
                    f"{where}: the answer (HTTP {status}, {content_type or 'no content type'}) is not JSON; "
                    f"is {self.url} a Sextant server?"
                )
            return doc
        err = doc.get("error") if isinstance(doc, dict) else None
        if isinstance(err, dict) and isinstance(err.get("code"), str) and isinstance(err.get("message"), str):
            cls = BY_KIND.get(err["code"])
            message = err["message"] if cls else f"{err['code']}: {err['message']}"
            field = err.get("field") if isinstance(err.get("field"), str) else None
            cls = cls or InternalError
        else:
            cls = _BY_STATUS.get(status) or (InternalError if status >= 500 else InvalidInput)
            snippet = payload[:200].decode("utf-8", "replace").strip()
            message = f"{where}: HTTP {status} {reason}" + (f": {snippet}" if snippet else "")
            field = None
        if cls is Overloaded:
            raise Overloaded(message, field, retry_after=_retry_after(retry_after))
        raise cls(message, field)

    # ---- collections and aliases ---------------------------------------------------------

    def list_collections(self) -> List[str]:
        return self._request("GET", "/collections", read=True)["collections"]

    def aliases(self) -> Dict[str, str]:
        return self._request("GET", "/aliases", read=True)["aliases"]

    def set_alias(self, alias: str, collection: str) -> None:
        self._request("PUT", f"/aliases/{_seg(alias)}", {"collection": collection})

    def delete_alias(self, alias: str) -> None:
        self._request("DELETE", f"/aliases/{_seg(alias)}")

    def create_collection(self, spec: Dict[str, Any]) -> None:
        name = spec.get("name")
        if not name:
            raise InvalidInput("name: give the collection's name", "name")
        self._request("PUT", f"/collections/{_seg(name)}", spec)

    def delete_collection(self, name: str) -> None:
        self._request("DELETE", f"/collections/{_seg(name)}")

    def has_collection(self, name: str) -> bool:
        try:
            self._request("GET", f"/collections/{_seg(name)}")
        except NotFound:
            return False
        return True

    def info(self, name: str) -> Dict[str, Any]:
        return self._request("GET", f"/collections/{_seg(name)}", read=True)

    def optimize(self, name: str) -> None:
        self._request("POST", f"/collections/{_seg(name)}/optimize")

    def tenants(self, name: str) -> List[Dict[str, Any]]:
        return self._request("GET", f"/collections/{_seg(name)}/tenants", read=True)["tenants"]

    def drop_tenant(self, name: str, tenant: Union[int, str]) -> int:
        return self._request("DELETE", f"/collections/{_seg(name)}/tenants/{_seg(tenant)}")["deleted"]

    # ---- points --------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        ids: List[Union[int, str]],
        vectors: Any,
        payloads: Optional[List[Optional[Dict[str, Any]]]] = None,
        tenant: Any = None,
        all_tenants: bool = False,
        expires_at: Optional[List[Optional[str]]] = None,
        ttl: Optional[List[Optional[int]]] = None,
    ) -> int:
        n = len(ids)
        if payloads is not None and len(payloads) != n:
            raise InvalidInput(f"payloads: {len(payloads)} payloads for {n} ids", "payloads")
        if isinstance(vectors, dict):
            by_space = {space: _rows(v, n, f"vectors.{space}") for space, v in vectors.items()}
            rows: List[Any] = [{space: r[i] for space, r in by_space.items()} for i in range(n)]
        else:
            rows = _rows(vectors, n, "vectors")
        points = [
            {"id": pid, "vector": rows[i], "payload": (payloads[i] if payloads is not None and payloads[i] is not None else {})}
            for i, pid in enumerate(ids)
        ]
        for field, values in (("expires_at", expires_at), ("ttl", ttl)):
            if values is None:
                continue
            if len(values) != n:
                raise InvalidInput(f"{field}: {len(values)} values for {n} ids", field)
            for p, v in zip(points, values):
                if v is not None:
                    p[field] = v
        body = _scope({"points": points}, tenant, all_tenants)
        return self._request("PUT", f"/collections/{_seg(name)}/points", body)["sequence"]

    def search(
        self,
        name: str,
        vector: Any,
        k: int = 10,
        ef: Optional[int] = None,
        filter: Any = None,
        space: Optional[str] = None,
        with_payload: bool = True,
        with_vector: bool = False,
        tenant: Any = None,
        all_tenants: bool = False,
        exact: bool = False,
        nprobe: Optional[int] = None,
    ) -> List[Hit]:
        native = self._native
        if native is not None:
            # The hot path: the native transport writes the body (checking the vector is
            # finite) and builds the hits; the rarer options go as one JSON object.
            v = vector
            if type(v) is not np.ndarray or v.dtype != np.float32 or not v.flags.c_contiguous:
                v = np.ascontiguousarray(v, dtype=np.float32)
            extra: Optional[bytes] = None
            if filter is not None or space is not None or nprobe is not None or exact or tenant is not None or all_tenants:
                rare: Dict[str, Any] = {}
                for key, val in (("nprobe", nprobe), ("filter", filter), ("space", space)):
                    if val is not None:
                        rare[key] = val
                if exact:
                    rare["exact"] = True
                extra = _dumps(_scope(rare, tenant, all_tenants), "body")
            known = self._search_targets.get(name)
            if known is None:
                path = f"/collections/{_seg(name)}/search"
                known = self._search_targets[name] = (self._prefix + path, f"POST {self.url.rstrip('/')}{path}")
            target, where = known
            try:
                out = self._native_call(where, lambda: native.search(target, v, k, ef, with_payload, with_vector, extra))
            except ValueError as e:
                if isinstance(e, SextantError):
                    raise
                raise InvalidInput(str(e), "vector") from e  # NaN or an infinity in the query
            return out if isinstance(out, list) else [_hit(h) for h in out["hits"]]
        v = np.asarray(vector, dtype=np.float32)
        if not np.isfinite(v).all():
            raise InvalidInput("vector: the query holds NaN or an infinity", "vector")
        body: Dict[str, Any] = {"vector": v.tolist(), "k": k, "with_payload": with_payload, "with_vector": with_vector}
        for key, val in (("ef", ef), ("nprobe", nprobe), ("filter", filter), ("space", space)):
            if val is not None:
                body[key] = val
        if exact:
            body["exact"] = True
        hits = self._request("POST", f"/collections/{_seg(name)}/search", _scope(body, tenant, all_tenants))["hits"]
        return [_hit(h) for h in hits]

    def get(
        self,
        name: str,
        ids: List[Union[int, str]],
        with_payload: bool = True,
        with_vector: bool = False,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> List[Dict[str, Any]]:
        body = _scope({"ids": list(ids), "with_payload": with_payload, "with_vector": with_vector}, tenant, all_tenants)
        return self._request("POST", f"/collections/{_seg(name)}/points/get", body, read=True)["points"]

    def delete(
        self,
        name: str,
        ids: Optional[List[Union[int, str]]] = None,
        filter: Any = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> int:
        body: Dict[str, Any] = {}
        if ids is not None:
            body["ids"] = list(ids)
        if filter is not None:
            body["filter"] = filter
        return self._request("POST", f"/collections/{_seg(name)}/points/delete", _scope(body, tenant, all_tenants))["deleted"]

    def count(self, name: str, filter: Any = None, tenant: Any = None, all_tenants: bool = False) -> int:
        body: Dict[str, Any] = {} if filter is None else {"filter": filter}
        return self._request("POST", f"/collections/{_seg(name)}/points/count", _scope(body, tenant, all_tenants), read=True)["count"]

    def scroll(
        self,
        name: str,
        filter: Any = None,
        limit: int = 100,
        offset: Optional[str] = None,
        order_by: Optional[str] = None,
        descending: bool = False,
        with_payload: bool = True,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> Tuple[List[Dict[str, Any]], Optional[str]]:
        body: Dict[str, Any] = {"limit": limit, "with_payload": with_payload}
        if filter is not None:
            body["filter"] = filter
        if offset is not None:
            body["offset"] = offset
        if order_by is not None:
            body["order_by"] = {"key": order_by, "direction": "desc" if descending else "asc"}
        page = self._request("POST", f"/collections/{_seg(name)}/points/scroll", _scope(body, tenant, all_tenants), read=True)
        return page["points"], page.get("next_offset")

    # ---- text ----------------------------------------------------------------------------

    # ---- evaluation, model upgrades, drift ---------------------------------------------------

    def eval(self, name: str, request: Dict[str, Any], tenant: Any = None, all_tenants: bool = False) -> Dict[str, Any]:
        body = _scope(dict(request), tenant, all_tenants)
        return self._request("POST", f"/collections/{_seg(name)}/eval", body)

    def _job(self, path: str, request: Dict[str, Any], what: str, poll: float) -> Dict[str, Any]:
        """Starts a server job and waits for it; returns its result, or raises its error."""
        import time

        job = self._request("POST", path, dict(request))
        while job["state"] == "running":
            time.sleep(poll)
            job = self._request("GET", f"/jobs/{job['id']}")
        if job["state"] == "failed":
            e = job.get("error") or {}
            cls = BY_KIND.get(e.get("code", "internal"), InternalError)
            raise cls(e.get("message", f"the {what} failed"), e.get("field"))
        return job["result"]

    def reindex(self, name: str, request: Dict[str, Any], poll: float = 0.2) -> Dict[str, Any]:
        """Starts the server's reindex job and waits for it; returns its report, or raises the
        job's error."""
        return self._job(f"/collections/{_seg(name)}/reindex", request, "reindex", poll)

    def advise(self, name: str, request: Dict[str, Any], poll: float = 0.2) -> Dict[str, Any]:
        """Starts the server's index advice job and waits for it; returns the advice."""
        return self._job(f"/collections/{_seg(name)}/advise", request, "advice", poll)

    def drift(self, name: str) -> Optional[Dict[str, Any]]:
        try:
            return self._request("GET", f"/collections/{_seg(name)}/drift")
        except NotFound as e:
            if "not monitored" in str(e):
                return None
            raise

    def drift_pin(self, name: str, request: Dict[str, Any]) -> Dict[str, Any]:
        return self._request("POST", f"/collections/{_seg(name)}/drift/pin", dict(request))

    def drift_add_canary(self, name: str, request: Dict[str, Any]) -> Dict[str, Any]:
        return self._request("POST", f"/collections/{_seg(name)}/drift/canaries", dict(request))

    def drift_canaries(self, name: str) -> List[Dict[str, Any]]:
        return self._request("GET", f"/collections/{_seg(name)}/drift/canaries")["canaries"]

    def drift_remove_canary(self, name: str, canary: str) -> None:
        self._request("DELETE", f"/collections/{_seg(name)}/drift/canaries/{_seg(canary)}")

    def drift_check(self, name: str) -> Dict[str, Any]:
        return self._request("POST", f"/collections/{_seg(name)}/drift/check")

    def query(self, name: str, request: Dict[str, Any], tenant: Any = None, all_tenants: bool = False) -> List[Dict[str, Any]]:
        body = _scope(dict(request), tenant, all_tenants)
        return self._request("POST", f"/collections/{_seg(name)}/query", body, read=True)["documents"]

    def ask(
        self,
        name: str,
        req: Mapping[str, Any],
        retrieval: Optional[Mapping[str, Any]],
        *,
        answer: bool = False,
        llm: Any = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> Dict[str, Any]:
        if llm is not None:
            raise InvalidInput(
                "llm: a server answers with its own configured language model (setting llm.endpoint); "
                "pass answer=True instead of llm",
                "llm",
            )
        body: Dict[str, Any] = dict(req)
        for key, val in (retrieval or {}).items():
            if key not in _ASK_RETRIEVAL:
                raise InvalidInput(f"{key}: not an option of a server's ask (it takes {', '.join(_ASK_RETRIEVAL)})", key)
            body[key] = val
        if answer:
            body["answer"] = True
        return self._request("POST", f"/collections/{_seg(name)}/ask", _scope(body, tenant, all_tenants))

    def _ingest_query(self, name: str, options: Optional[Mapping[str, Any]], tenant: Any, all_tenants: bool) -> Dict[str, str]:
        """The query string of an ingest: its options, with ``model`` left out when the
        collection exists (its model is fixed then and the server refuses to be told it, while
        the engine ignores it)."""
        q: Dict[str, str] = {}
        for key, val in (options or {}).items():
            if val is None:
                continue
            if key not in _SERVER_INGEST_OPTIONS:
                raise InvalidInput(
                    f"{key}: a server does not take this ingest option (it takes {', '.join(_SERVER_INGEST_OPTIONS)})", key
                )
            q[key] = ("true" if val else "false") if isinstance(val, bool) else str(val)
        if "model" in q and self.has_collection(name):
            del q["model"]
        return _scope_query(q, tenant, all_tenants)

    def _ingest(self, name: str, query: Dict[str, str], raw: Union[bytes, _Multipart], content_type: str) -> Dict[str, Any]:
        path = f"/collections/{_seg(name)}/documents"
        try:
            return self._request("POST", path, query=query, raw=raw, content_type=content_type)
        except Conflict as e:
            # Made by another client since we looked: its model is fixed, so leave it out.
            if e.field != "model" or "model" not in query:
                raise
            query = {k: v for k, v in query.items() if k != "model"}
            return self._request("POST", path, query=query, raw=raw, content_type=content_type)

    def add_documents(
        self,
        name: str,
        documents: List[Dict[str, Any]],
        options: Optional[Dict[str, Any]] = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> Dict[str, Any]:
        docs = []
        for i, d in enumerate(documents):
            if not isinstance(d, dict):
                raise InvalidInput(f"documents[{i}]: a document is a dict with id and text", f"documents[{i}]")
            for key in d:
                if key not in ("id", "text", "title", "fields"):
                    raise InvalidInput(f"documents[{i}].{key}: unknown key: a document has id, text, title and fields", f"documents[{i}].{key}")
            fields = d.get("fields")
            if fields is not None and not isinstance(fields, dict):
                raise InvalidInput(f"documents[{i}].fields: fields must be a dict", f"documents[{i}].fields")
            docs.append((d, fields or {}))
        # Field names for the id, text and title that no document's metadata uses, so every
        # metadata key reaches the payloads as it is.
        taken = {k for _, f in docs for k in f}
        id_f = _unique_field("_sextant_id", taken)
        text_f = _unique_field("_sextant_text", taken)
        title_f = _unique_field("_sextant_title", taken)
        lines = []
        for i, (d, fields) in enumerate(docs):
            rec = dict(fields)
            rec[id_f] = d.get("id")
            rec[text_f] = d.get("text")
            if d.get("title") is not None:
                rec[title_f] = d["title"]
            lines.append(_dumps(rec, f"documents[{i}]"))
        query = self._ingest_query(name, options, tenant, all_tenants)
        query.update(id_field=id_f, text_field=text_f, title_field=title_f)
        body = b"\n".join(lines) + (b"\n" if lines else b"")
        return self._ingest(name, query, body, "application/x-ndjson")

    def ingest_paths(
        self,
        name: str,
        paths: List[str],
        options: Optional[Dict[str, Any]] = None,
        tenant: Any = None,
        all_tenants: bool = False,
        progress: Optional[Callable[[int], None]] = None,
    ) -> Dict[str, Any]:
        t0 = time.monotonic()
        files: List[str] = []
        for p in paths:
            if not os.path.exists(p):
                raise NotFound(f"no such file or directory: {p}")
            files.extend(_walk(p))
        # The server names an uploaded document by its file name.
        seen: Dict[str, str] = {}
        for f in files:
            base = os.path.basename(f)
            if base in seen:
                raise InvalidInput(
                    f"paths: two files are named {base!r} ({seen[base]} and {f}); a server names uploaded documents by file name",
                    "paths",
                )
            seen[base] = f
        query = self._ingest_query(name, options, tenant, all_tenants)
        if not files:
            # Nothing to read: an empty JSONL body still makes the collection, as the engine does.
            report = self._ingest(name, query, b"", "application/x-ndjson")
            if progress is not None:
                progress(0)
            return report
        batches: List[List[str]] = [[]]
        size = 0
        for f in files:
            fsize = os.path.getsize(f)
            if batches[-1] and (len(batches[-1]) >= UPLOAD_BATCH_FILES or size + fsize > UPLOAD_BATCH_BYTES):
                batches.append([])
                size = 0
            batches[-1].append(f)
            size += fsize
        reports = []
        for i, batch in enumerate(batches):
            reports.append(self._ingest(name, query, _Multipart(batch), ""))
            if i == 0:
                query.pop("model", None)  # the collection exists now
            if progress is not None:
                progress(sum(r.get("documents", 0) for r in reports))
        return reports[0] if len(reports) == 1 else _merge_reports(reports, time.monotonic() - t0)

    def delete_document(self, name: str, doc_id: str, tenant: Any = None, all_tenants: bool = False) -> int:
        path = f"/collections/{_seg(name)}/documents/{_seg(doc_id)}"
        try:
            return self._request("DELETE", path, query=_scope_query({}, tenant, all_tenants))["deleted_chunks"]
        except NotFound:
            # The server answers 404 for a document it does not hold; the engine answers 0
            # chunks deleted. A missing collection stays an error.
            if self.has_collection(name):
                return 0
            raise

    def delete_older_than(self, name: str, older_than: str, tenant: Any = None, all_tenants: bool = False) -> Dict[str, Any]:
        path = f"/collections/{_seg(name)}/documents"
        return self._request("DELETE", path, query=_scope_query({"older_than": older_than}, tenant, all_tenants))

    # ---- models --------------------------------------------------------------------------

    def embed(self, texts: List[str], model: Optional[str], *, kind: str = "plain", dimensions: Optional[int] = None) -> np.ndarray:
        if not texts:
            # A server refuses an empty list; the engine answers 0 rows of the model's width.
            return self.embed([""], model, kind=kind, dimensions=dimensions)[:0]
        body: Dict[str, Any] = {"texts": list(texts), "kind": kind}
        if model is not None:
            body["model"] = model
        if dimensions is not None:
            body["dimensions"] = dimensions
        out = self._request("POST", "/embed", body, read=True)
        arr = np.asarray(out["embeddings"], dtype=np.float32)
        return arr.reshape(len(texts), out.get("dim", arr.shape[-1] if arr.ndim == 2 else 0))

    def rerank(self, query: str, documents: List[str], model: str) -> List[float]:
        return self._request("POST", "/rerank", {"query": query, "documents": list(documents), "model": model}, read=True)["scores"]

    def close(self) -> None:
        """Closes every thread's connection; later calls raise :class:`InvalidInput`."""
        self._closed = True
        self._native = None  # its pooled connections close with it
        with self._lock:
            conns, self._open = list(self._open), set()
        for c in conns:
            c.close()
        self._local = threading.local()

"""The public API: :class:`Database` and :class:`Collection` over a backend.

A backend is either the engine in this process (``sextant._native.Database``, made by
:func:`sextant.open`) or a client of a server (``sextant._http.HttpBackend``, made by
:func:`sextant.connect`). Both take the same calls and answer with the same plain shapes (the
HTTP server's JSON), so everything here behaves the same on either: code moves from embedded
to served by changing the line that opens the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _native
from .errors import InvalidInput, NotFound

PointId = Union[int, str]
Filter = Dict[str, Any]

#: Options of a document collection, fixed when the collection is made by its first write
#: (``Database.collection(name, **options)``); the same as ``sextant ingest`` flags.
INGEST_OPTIONS = (
    "model",
    "splade",
    "no_splade",
    "chunking",
    "chunk_tokens",
    "chunk_overlap",
    "parent_tokens",
    "redact",
    "redact_kinds",
    "tenant_key",
    "dedup",
    "dedup_threshold",
    "language",
    "precision",
    "batch",
    "encrypt",
)

_TEXT_OPTIONS = ("mode", "sources", "weights", "fusion", "rerank", "rerank_top", "rerank_blend", "source_k", "mmr", "group_size", "precision", "query_language", "expand", "rm3_docs", "rm3_terms", "rm3_weight", "rewrites", "llm")
_VECTOR_OPTIONS = ("ef", "nprobe", "exact", "space", "with_vector")


# A search result: a point (vector search) or a chunk of a document (text search). Built in the
# extension (``crates/sextant-py/src/hit.rs``): a search makes k of them on every call.
Hit = _native.Hit


@dataclass(frozen=True)
class DocumentHit:
    """A document and its best chunks (text search with ``group_size`` > 1)."""

    doc_id: str
    score: float
    chunks: List[Hit] = field(default_factory=list)
    #: Documents collapsed into this one as its duplicates (``dedup="link"`` collections).
    copies: List[str] = field(default_factory=list)


@dataclass(frozen=True)
class Point:
    """A stored point (``get``, ``scroll``)."""

    id: PointId
    payload: Optional[Dict[str, Any]] = None
    vector: Optional[Union[np.ndarray, Dict[str, np.ndarray]]] = None


def _vector_of(v: Any) -> Any:
    """A point's ``vectors`` (by space) as one array (one space) or a dict of arrays."""
    if v is None:
        return None
    if len(v) == 1:
        return np.asarray(next(iter(v.values())), dtype=np.float32)
    return {k: np.asarray(x, dtype=np.float32) for k, x in v.items()}


def _hit(h: Mapping[str, Any]) -> Hit:
    v = h.get("vectors")
    return Hit(h["id"], h.get("score", 0.0), h.get("payload"), None if v is None else _vector_of(v))


def _chunk(c: Mapping[str, Any]) -> Hit:
    return Hit(
        id=c["id"],
        score=c["score"],
        payload=c.get("payload"),
        doc_id=c.get("doc_id"),
        sources=c.get("sources"),
        rerank_score=c.get("rerank_score"),
    )


def _point(p: Mapping[str, Any]) -> Point:
    return Point(id=p["id"], payload=p.get("payload"), vector=_vector_of(p.get("vectors")))


def _matrix(vectors: Any, n: int, what: str = "vectors") -> Any:
    if isinstance(vectors, dict):
        return {k: _matrix(v, n, f"{what}[{k!r}]") for k, v in vectors.items()}
    a = np.ascontiguousarray(vectors, dtype=np.float32)
    if a.ndim == 1 and n == 1:
        a = a.reshape(1, -1)
    if a.ndim != 2:
        raise InvalidInput(f"{what}: expected one row per id (a 2-D array), got shape {a.shape}", what)
    if a.shape[0] != n:
        raise InvalidInput(f"{what}: {a.shape[0]} rows for {n} ids", what)
    return a


def _refuse(options: Mapping[str, Any], names: Sequence[str], why: str) -> None:
    for n in names:
        if options.get(n) not in (None, False):
            raise InvalidInput(f"{n}: {why}", n)


class Collection:
    """A collection of points (vectors with payloads) or of documents (chunked text, embedded
    by the collection's model). Get one from :meth:`Database.collection`."""

    def __init__(self, db: "Database", name: str, options: Optional[Dict[str, Any]] = None):
        self._db = db
        self._b = db._backend
        self.name = name
        self._options = dict(options or {})

    def __repr__(self) -> str:
        return f"Collection({self.name!r})"

    # ---- writing -------------------------------------------------------------------------

    def add(
        self,
        ids: Sequence[PointId],
        texts: Optional[Sequence[str]] = None,
        metadatas: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
        vectors: Any = None,
        *,
        titles: Optional[Sequence[str]] = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> Dict[str, Any]:
        """Adds (or replaces) items by id.

        - ``texts`` without ``vectors``: documents, chunked and embedded by the collection's
          model (the collection is made on first use with the options given to
          :meth:`Database.collection`); ``metadatas`` are stored in every chunk's payload.
          Returns the ingest report.
        - ``vectors`` (an ``n × d`` array, or a dict of them by space): points with
          ``metadatas`` as payloads (and ``texts``, when given, in each payload's ``text``).
          Returns ``{"upserted": n, "sequence": s}``.
        """
        ids = list(ids)
        n = len(ids)
        for what, seq in (("texts", texts), ("metadatas", metadatas), ("titles", titles)):
            if seq is not None and len(seq) != n:
                raise InvalidInput(f"{what}: {len(seq)} items for {n} ids", what)
        if vectors is not None:
            if titles is not None:
                raise InvalidInput("titles: titles belong to documents; points take payloads", "titles")
            payloads = [dict(m) if m else {} for m in (metadatas or [None] * n)]
            if texts is not None:
                for p, t in zip(payloads, texts):
                    p["text"] = t
            seq = self.upsert(ids, vectors, payloads, tenant=tenant, all_tenants=all_tenants)
            return {"upserted": n, "sequence": seq}
        if texts is None:
            raise InvalidInput("texts: give texts (documents) or vectors (points)", "texts")
        docs = []
        for i, (doc_id, text) in enumerate(zip(ids, texts)):
            d: Dict[str, Any] = {"id": doc_id, "text": text}
            if titles is not None and titles[i]:
                d["title"] = titles[i]
            if metadatas is not None and metadatas[i]:
                d["fields"] = dict(metadatas[i])
            docs.append(d)
        return self._b.add_documents(self.name, docs, self._options or None, tenant=tenant, all_tenants=all_tenants)

    def upsert(
        self,
        ids: Sequence[PointId],
        vectors: Any,
        payloads: Optional[Sequence[Optional[Dict[str, Any]]]] = None,
        *,
        expires_at: Optional[Sequence[Optional[str]]] = None,
        ttl: Optional[Sequence[Optional[int]]] = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> int:
        """Writes points atomically (an existing id is replaced); returns the WAL sequence.
        ``expires_at`` (RFC 3339 instants) or ``ttl`` (seconds from now), one per id (None:
        no own expiry, the collection's default ``ttl`` applies): from that instant no read
        returns the point."""
        ids = list(ids)
        if payloads is not None:
            payloads = list(payloads)
        extra: Dict[str, Any] = {}
        if expires_at is not None:
            extra["expires_at"] = list(expires_at)
        if ttl is not None:
            extra["ttl"] = list(ttl)
        return self._b.upsert(self.name, ids, _matrix(vectors, len(ids)), payloads, tenant=tenant, all_tenants=all_tenants, **extra)

    def ingest(
        self,
        paths: Union[str, Sequence[str]],
        *,
        tenant: Any = None,
        all_tenants: bool = False,
        progress: Union[bool, Callable[[int], None], None] = None,
    ) -> Dict[str, Any]:
        """Ingests files and folders (text, Markdown, HTML, PDF) as ``sextant ingest`` does;
        returns the ingest report. ``progress``: a callable given the number of documents
        written so far (about once a second and at the end), or ``True`` for a line on
        stderr."""
        if isinstance(paths, (str, bytes)) or hasattr(paths, "__fspath__"):
            paths = [paths]
        to_stderr = progress is True
        if to_stderr:
            import sys

            def progress(n: int) -> None:
                sys.stderr.write(f"\ringested {n} documents")
                sys.stderr.flush()

        elif progress is False:
            progress = None
        report = self._b.ingest_paths(
            self.name, [str(p) for p in paths], self._options or None, tenant=tenant, all_tenants=all_tenants, progress=progress
        )
        if to_stderr:
            sys.stderr.write("\n")
        return report

    def delete(
        self,
        ids: Optional[Sequence[PointId]] = None,
        *,
        filter: Optional[Filter] = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> int:
        """Deletes points by id or by filter (exactly one); returns how many were deleted.
        Ids that do not exist are not an error."""
        return self._b.delete(self.name, None if ids is None else list(ids), filter, tenant=tenant, all_tenants=all_tenants)

    def delete_document(self, doc_id: str, *, tenant: Any = None, all_tenants: bool = False) -> int:
        """Deletes a document's chunks; returns how many."""
        return self._b.delete_document(self.name, str(doc_id), tenant=tenant, all_tenants=all_tenants)

    def delete_older_than(self, older_than: str, *, tenant: Any = None, all_tenants: bool = False) -> Dict[str, Any]:
        """Deletes every document ingested longer ago than ``older_than`` (``"30d"``,
        ``"12h"``, ``"90m"``, ``"45s"``), all chunks in one durable write; returns
        ``{"deleted_documents", "deleted_chunks", "cutoff"}``."""
        return self._b.delete_older_than(self.name, str(older_than), tenant=tenant, all_tenants=all_tenants)

    # ---- reading -------------------------------------------------------------------------

    def get(
        self,
        ids: Sequence[PointId],
        *,
        with_payload: bool = True,
        with_vector: bool = False,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> List[Point]:
        """Points by id, in the order asked; ids that do not exist are left out."""
        pts = self._b.get(self.name, list(ids), with_payload=with_payload, with_vector=with_vector, tenant=tenant, all_tenants=all_tenants)
        return [_point(p) for p in pts]

    def count(self, filter: Optional[Filter] = None, *, tenant: Any = None, all_tenants: bool = False) -> int:
        """Live points matching ``filter`` (all when ``None``)."""
        return self._b.count(self.name, filter, tenant=tenant, all_tenants=all_tenants)

    def __len__(self) -> int:
        return self.count()

    def scroll(
        self,
        filter: Optional[Filter] = None,
        *,
        limit: int = 100,
        offset: Optional[str] = None,
        order_by: Optional[str] = None,
        descending: bool = False,
        with_payload: bool = True,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> Tuple[List[Point], Optional[str]]:
        """One page of points, by id or by a payload key: ``(points, next_offset)``; pass
        ``next_offset`` back for the next page (``None`` after the last)."""
        pts, nxt = self._b.scroll(
            self.name,
            filter,
            limit=limit,
            offset=offset,
            order_by=order_by,
            descending=descending,
            with_payload=with_payload,
            tenant=tenant,
            all_tenants=all_tenants,
        )
        return [_point(p) for p in pts], nxt

    def points(self, filter: Optional[Filter] = None, *, page: int = 256, **kw: Any) -> Iterator[Point]:
        """Every point matching ``filter``, page by page."""
        offset = None
        while True:
            pts, offset = self.scroll(filter, limit=page, offset=offset, **kw)
            yield from pts
            if offset is None:
                return

    def search(
        self,
        query: Union[str, Sequence[float], np.ndarray, bytes, "os.PathLike[str]"],
        k: int = 10,
        *,
        filter: Optional[Filter] = None,
        tenant: Any = None,
        all_tenants: bool = False,
        with_payload: bool = True,
        # vector search
        ef: Optional[int] = None,
        nprobe: Optional[int] = None,
        exact: bool = False,
        space: Optional[str] = None,
        with_vector: bool = False,
        # text search (document collections)
        mode: Optional[str] = None,
        sources: Optional[Sequence[str]] = None,
        weights: Optional[Sequence[float]] = None,
        fusion: Optional[str] = None,
        rerank: Optional[str] = None,
        rerank_top: Optional[int] = None,
        rerank_blend: Optional[float] = None,
        source_k: Optional[int] = None,
        mmr: Optional[float] = None,
        group_size: Optional[int] = None,
        precision: Optional[str] = None,
        query_language: Optional[str] = None,
        expand: Optional[str] = None,
        rm3_docs: Optional[int] = None,
        rm3_terms: Optional[int] = None,
        rm3_weight: Optional[float] = None,
        rewrites: Optional[int] = None,
        llm: Optional[Dict[str, Any]] = None,
    ) -> List[Any]:
        """Searches the collection.

        A string is a text query over a document collection: ``mode`` dense, bm25, splade or
        hybrid (default), with ``fusion``, ``weights``, ``rerank`` (``rerank_top``,
        ``rerank_blend``), ``mmr``…; the answer is one
        :class:`Hit` per document (its best chunk), or :class:`DocumentHit` with up to
        ``group_size`` chunks each when ``group_size`` > 1. ``query_language`` names the
        language BM25 analyses the query in; ``expand`` is ``rm3`` (with ``rm3_docs``,
        ``rm3_terms``, ``rm3_weight``), ``multi-query`` (``rewrites``) or ``hyde``, the last two
        through ``llm`` (``{"url", "model", "timeout_s"}``).

        A picture (a :class:`pathlib.Path` to a PNG, JPEG or WebP file, or its ``bytes``) searches
        a document collection made with a CLIP model by the picture's embedding (the dense
        source); options that need query text are refused.

        A vector (list or numpy array) is a nearest-neighbour search: ``ef`` sets the HNSW
        candidate list (for an ivf_pq space, the candidates rescored exactly), ``nprobe`` the
        lists an ivf_pq space scans, ``exact`` searches every point exactly; the answer is
        :class:`Hit`\\ s.
        Options of the other kind of search are refused, never ignored.
        """
        image: Optional[str] = None
        if isinstance(query, (bytes, bytearray, memoryview)) or isinstance(query, os.PathLike):
            import base64

            data = bytes(query) if not isinstance(query, os.PathLike) else Path(query).read_bytes()
            image = base64.b64encode(data).decode("ascii")
            query = ""
        if not isinstance(query, str):
            # The hot path: a vector query. Text-search options are refused, never ignored.
            if (
                mode is not None
                or sources is not None
                or weights is not None
                or fusion is not None
                or rerank is not None
                or rerank_top is not None
                or rerank_blend is not None
                or source_k is not None
                or mmr is not None
                or group_size is not None
                or precision is not None
                or query_language is not None
                or expand is not None
                or rm3_docs is not None
                or rm3_terms is not None
                or rm3_weight is not None
                or rewrites is not None
                or llm is not None
            ):
                _refuse(
                    dict(
                        mode=mode,
                        sources=sources,
                        weights=weights,
                        fusion=fusion,
                        rerank=rerank,
                        rerank_top=rerank_top,
                        rerank_blend=rerank_blend,
                        source_k=source_k,
                        mmr=mmr,
                        group_size=group_size,
                        precision=precision,
                        query_language=query_language,
                        expand=expand,
                        rm3_docs=rm3_docs,
                        rm3_terms=rm3_terms,
                        rm3_weight=rm3_weight,
                        rewrites=rewrites,
                        llm=llm,
                    ),
                    _TEXT_OPTIONS,
                    "a text-search option; this is a vector query",
                )
            v = query if type(query) is np.ndarray and query.dtype == np.float32 else np.asarray(query, dtype=np.float32)
            if v.ndim != 1:
                raise InvalidInput(f"query: a vector is 1-D, got shape {v.shape}", "query")
            # Positional: keyword parsing is a measurable share of a fast search.
            return self._b.search(self.name, v, k, ef, filter, space, with_payload, with_vector, tenant, all_tenants, exact, nprobe)
        _refuse(
            dict(ef=ef, nprobe=nprobe, exact=exact, space=space, with_vector=with_vector),
            _VECTOR_OPTIONS,
            "a vector-search option; this is a text query",
        )
        if not with_payload:
            raise InvalidInput("with_payload: text search always returns the chunks' payloads", "with_payload")
        opts = dict(
            mode=mode,
            sources=sources,
            weights=weights,
            fusion=fusion,
            rerank=rerank,
            rerank_top=rerank_top,
            rerank_blend=rerank_blend,
            source_k=source_k,
            mmr=mmr,
            group_size=group_size,
            precision=precision,
            query_language=query_language,
            expand=expand,
            rm3_docs=rm3_docs,
            rm3_terms=rm3_terms,
            rm3_weight=rm3_weight,
            rewrites=rewrites,
            llm=llm,
        )
        req: Dict[str, Any] = {"text": query, "k": k}
        if image is not None:
            req["image"] = image
        for n in _TEXT_OPTIONS:
            if opts[n] is not None:
                req[n] = list(opts[n]) if n in ("sources", "weights") else opts[n]
        if filter is not None:
            req["filter"] = filter
        docs = self._b.query(self.name, req, tenant=tenant, all_tenants=all_tenants)
        if group_size is not None and group_size > 1:
            return [
                DocumentHit(d["doc_id"], d["score"], [_chunk(c) for c in d["chunks"]], list(d.get("copies", [])))
                for d in docs
            ]
        out = []
        for d in docs:
            for c in d["chunks"]:
                h = _chunk(c)
                out.append(Hit(h.id, d["score"] if len(d["chunks"]) == 1 else h.score, h.payload, None, h.doc_id, h.sources, h.rerank_score))
        return out

    def ask(
        self,
        question: str,
        *,
        k: Optional[int] = None,
        budget: Optional[int] = None,
        answer: bool = False,
        llm: Union[None, str, Dict[str, Any]] = None,
        filter: Optional[Filter] = None,
        tenant: Any = None,
        all_tenants: bool = False,
        **retrieval: Any,
    ) -> Dict[str, Any]:
        """Retrieves, packs a cited context within ``budget`` model tokens and, when asked,
        gets an answer from a language model: ``{"question", "answer", "context"}``.

        ``context["passages"]`` are numbered for citation. On a server, ``answer=True`` uses
        the server's configured LLM; embedded, give ``llm`` (an OpenAI-compatible endpoint URL,
        or ``{"url", "model", "timeout_s"}``). ``retrieval`` takes the text-search options of
        :meth:`search` (``mode``, ``fusion``, ``rerank``…)."""
        for n in retrieval:
            if n not in _TEXT_OPTIONS:
                raise InvalidInput(f"{n}: unknown option of ask (retrieval takes {', '.join(_TEXT_OPTIONS)})", n)
        if isinstance(llm, str):
            llm = {"url": llm}
        req: Dict[str, Any] = {"question": question}
        if k is not None:
            req["k"] = k
        if budget is not None:
            req["budget"] = budget
        r = {n: (list(v) if n in ("sources", "weights") else v) for n, v in retrieval.items() if v is not None}
        if filter is not None:
            r["filter"] = filter
        return self._b.ask(self.name, req, r, answer=answer, llm=llm, tenant=tenant, all_tenants=all_tenants)

    # ---- administration ------------------------------------------------------------------

    def info(self) -> Dict[str, Any]:
        """Counts, segments, memory, disk, schema and settings."""
        return self._b.info(self.name)

    def tenants(self) -> Dict[Any, int]:
        """Tenants of a multi-tenant collection and their point counts."""
        return {t["tenant"]: t["points"] for t in self._b.tenants(self.name)}

    def drop_tenant(self, tenant: Any) -> int:
        """Deletes every point of a tenant; returns how many."""
        return self._b.drop_tenant(self.name, tenant)

    def optimize(self) -> None:
        """Flushes, merges and builds indexes now (otherwise done in the background)."""
        self._b.optimize(self.name)

    def evaluate_configs(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        configs: Sequence[str] = (),
        baselines: bool = True,
        compare_to: Optional[str] = None,
        compare: Optional[str] = None,
        sweep_weights: Optional[int] = None,
        metrics: Optional[Sequence[str]] = None,
        depth: Optional[int] = None,
        permutations: Optional[int] = None,
        seed: Optional[int] = None,
        fail_k: Optional[int] = None,
        tenant: Any = None,
        all_tenants: bool = False,
    ) -> Dict[str, Any]:
        """The engine's evaluation (``sextant eval``) of a document collection: ``queries`` (id
        → text) against ``qrels`` (query id → {document id: grade}) for every configuration
        (built-ins ``random``, ``bm25``, ``dense``, ``dense-exact``, ``splade``, ``hybrid`` or
        ``NAME=KEY=VALUE;…``), with the baselines unless ``baselines=False``, every metric at
        its cut-offs, latency, paired significance against the reference, error analysis;
        ``compare`` runs every configuration on a second collection too, ``sweep_weights`` adds
        a fusion-weight sweep. Returns the report (its Markdown in ``markdown``)."""
        req: Dict[str, Any] = {
            "queries": [{"id": str(q), "text": t} for q, t in queries.items()],
            "qrels": {str(q): {str(d): int(g) for d, g in r.items()} for q, r in qrels.items()},
            "configs": list(configs),
            "no_baselines": not baselines,
        }
        for key, value in (
            ("compare_to", compare_to),
            ("compare", compare),
            ("sweep_weights", sweep_weights),
            ("metrics", list(metrics) if metrics is not None else None),
            ("depth", depth),
            ("permutations", permutations),
            ("seed", seed),
            ("fail_k", fail_k),
        ):
            if value is not None:
                req[key] = value
        return self._b.eval(self.name, req, tenant=tenant, all_tenants=all_tenants)

    # ---- index advice ----------------------------------------------------------------------

    def advise(
        self,
        *,
        space: Optional[str] = None,
        points: Optional[int] = None,
        memory_budget: Optional[int] = None,
        target_recall: Optional[float] = None,
        k: Optional[int] = None,
        sample: Optional[int] = None,
        queries: Optional[int] = None,
        query_vectors: Any = None,
        seed: Optional[int] = None,
    ) -> Dict[str, Any]:
        """Recommends an index layout: builds every layout the space could be created with on a
        sample of its vectors (``sample``, 100,000 by default), measures recall@``k`` and speed
        against exact ground truth, projects RAM and speed to ``points`` (default: the live
        points) and returns the report; ``report["layouts"][report["recommended"]]`` is the
        fastest layout reaching ``target_recall`` (0.95) within ``memory_budget`` (bytes of RAM
        for the whole collection), with its ``create_flags`` and ``search_flags``.
        ``query_vectors`` (an array or list of vectors) are your own queries instead of held-out
        stored vectors; ``queries`` caps how many are used. Blocks until done (on a server, by
        following its job)."""
        req: Dict[str, Any] = {}
        if query_vectors is not None:
            req["query_vectors"] = np.asarray(query_vectors, dtype=np.float32).tolist()
        for key, value in (
            ("space", space),
            ("points", points),
            ("memory_budget", memory_budget),
            ("target_recall", target_recall),
            ("k", k),
            ("sample", sample),
            ("queries", queries),
            ("seed", seed),
        ):
            if value is not None:
                req[key] = value
        return self._b.advise(self.name, req)

    # ---- drift monitoring ------------------------------------------------------------------

    def drift(self) -> Optional[Dict[str, Any]]:
        """The drift report (the vectors' distribution against the pinned reference, canary
        checks, alarms), or None when the collection is not monitored."""
        return self._b.drift(self.name)

    def pin_drift(self, *, shift_alarm: Optional[float] = None, precision_alarm: Optional[float] = None) -> Dict[str, Any]:
        """Pins the distribution of the vectors now as the drift reference."""
        req: Dict[str, Any] = {}
        if shift_alarm is not None:
            req["shift_alarm"] = shift_alarm
        if precision_alarm is not None:
            req["precision_alarm"] = precision_alarm
        return self._b.drift_pin(self.name, req)

    def add_canary(
        self,
        name: str,
        text: Optional[str] = None,
        *,
        vector: Any = None,
        k: int = 10,
        expected: Optional[Sequence[PointId]] = None,
        space: Optional[str] = None,
    ) -> Dict[str, Any]:
        """Adds a canary query: a ``text`` (embedded with the collection's model) or a
        ``vector``, with the ids ``expected`` in its top ``k`` (default: the exact top k now)."""
        req: Dict[str, Any] = {"name": name, "k": k}
        if text is not None:
            req["text"] = text
        if vector is not None:
            req["vector"] = [float(x) for x in vector]
        if expected is not None:
            req["expected"] = list(expected)
        if space is not None:
            req["space"] = space
        return self._b.drift_add_canary(self.name, req)

    def canaries(self) -> List[Dict[str, Any]]:
        """The canary queries."""
        return self._b.drift_canaries(self.name)

    def remove_canary(self, name: str) -> None:
        """Removes a canary query (``NotFound`` when there is none of that name)."""
        self._b.drift_remove_canary(self.name, name)

    def check_drift(self) -> Dict[str, Any]:
        """Runs every canary, records the check and returns the drift report."""
        return self._b.drift_check(self.name)

    def evaluate(
        self,
        queries: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        k: int = 100,
        by: str = "doc_id",
        **search: Any,
    ) -> Dict[str, Any]:
        """Runs ``queries`` (id → text) through :meth:`search` (with ``search`` options) and
        scores them against ``qrels`` (query id → {document id: grade}): nDCG@10,
        Recall@100, MRR@10 and MAP, computed by the engine's evaluator. ``by`` is the hit
        attribute matched against qrels' document ids: ``doc_id`` or ``id``."""
        from . import evaluate as _evaluate

        if by not in ("doc_id", "id"):
            raise InvalidInput("by: doc_id or id", "by")
        run: Dict[str, Dict[str, float]] = {}
        for qid, text in queries.items():
            scores: Dict[str, float] = {}
            for h in self.search(text, k, **search):
                key = str(getattr(h, by))
                scores.setdefault(key, float(h.score))
            run[qid] = scores
        return _evaluate(run, {q: dict(r) for q, r in qrels.items()})


class Database:
    """A Sextant database: the engine in this process (:func:`sextant.open`) or a server
    (:func:`sextant.connect`). The same methods work on both."""

    def __init__(self, backend: Any, where: str):
        self._backend = backend
        self._where = where

    def __repr__(self) -> str:
        return f"sextant.Database({self._where})"

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Makes every write durable and releases the database (or the connection)."""
        self._backend.close()

    def collection(self, name: str, **options: Any) -> Collection:
        """A collection by name or alias. A document collection that does not exist yet is
        made by its first ``add``/``ingest`` with ``options`` (``model``, ``chunking``,
        ``chunk_tokens``, ``redact``, ``tenant_key``, ``no_splade``…, as ``sextant ingest``
        takes them); on an existing collection options that differ from its settings are
        refused."""
        for n in options:
            if n not in INGEST_OPTIONS:
                raise InvalidInput(f"{n}: unknown collection option (expected one of {', '.join(INGEST_OPTIONS)})", n)
        return Collection(self, name, options)

    def get_collection(self, name: str) -> Collection:
        """An existing collection; :class:`NotFound` when there is none."""
        if not self._backend.has_collection(name):
            raise NotFound(f"no collection or alias named {name!r}")
        return Collection(self, name)

    def has_collection(self, name: str) -> bool:
        return self._backend.has_collection(name)

    def create_collection(
        self,
        name: str,
        dim: Optional[int] = None,
        *,
        metric: Optional[str] = None,
        index: Optional[str] = None,
        m: Optional[int] = None,
        ef_construction: Optional[int] = None,
        quantization: Optional[str] = None,
        nlist: Optional[int] = None,
        pq_m: Optional[int] = None,
        pq_bits: Optional[int] = None,
        opq: Optional[bool] = None,
        nprobe: Optional[int] = None,
        on_disk: bool = False,
        spaces: Optional[Sequence[Dict[str, Any]]] = None,
        payload_indexes: Optional[Dict[str, str]] = None,
        tenant_key: Optional[str] = None,
        encrypted: bool = False,
        ttl: Optional[str] = None,
        exist_ok: bool = False,
    ) -> Collection:
        """Makes a vector collection: one space (``dim``, ``metric`` cosine/dot/l2/l1, or hamming/jaccard for 0/1 vectors,
        ``index`` hnsw/flat/ivf_pq, ``m``, ``ef_construction``, ``quantization``
        (auto/none/sq8/pq4: what the graph walk compares) for hnsw, ``nlist``, ``pq_m``,
        ``pq_bits`` (4 or 8 bits per code), ``opq`` (learn a rotation before quantising),
        ``nprobe`` for ivf_pq, ``on_disk`` to keep flushed vectors memory-mapped on disk
        instead of in memory) or named ``spaces`` (each may say ``"on_disk": True``);
        ``payload_indexes`` maps payload keys to keyword/integer/float/datetime/text;
        ``tenant_key`` (``KEY`` or ``KEY:integer``) makes it multi-tenant; ``encrypted``
        encrypts it at rest (the database needs its master key); ``ttl``
        (``FIELD:DURATION``, e.g. ``"created:30d"``) is the default expiry: DURATION after the
        RFC 3339 instant in a point's payload FIELD."""
        spec: Dict[str, Any] = {"name": name}
        if encrypted:
            spec["encrypted"] = True
        if on_disk:
            spec["on_disk"] = True
        for k, v in (
            ("dim", dim),
            ("metric", metric),
            ("index", index),
            ("m", m),
            ("ef_construction", ef_construction),
            ("quantization", quantization),
            ("nlist", nlist),
            ("pq_m", pq_m),
            ("pq_bits", pq_bits),
            ("opq", opq),
            ("nprobe", nprobe),
            ("spaces", None if spaces is None else list(spaces)),
            ("payload_indexes", payload_indexes),
            ("tenant_key", tenant_key),
            ("ttl", ttl),
        ):
            if v is not None:
                spec[k] = v
        try:
            self._backend.create_collection(spec)
        except Exception as e:  # noqa: BLE001 - re-raised unless it is the name taken
            from .errors import AlreadyExists

            if not (exist_ok and isinstance(e, AlreadyExists)):
                raise
        return Collection(self, name)

    def list_collections(self) -> List[str]:
        return list(self._backend.list_collections())

    def delete_collection(self, name: str) -> None:
        self._backend.delete_collection(name)

    def aliases(self) -> Dict[str, str]:
        """Alias → collection."""
        return dict(self._backend.aliases())

    def set_alias(self, alias: str, collection: str) -> None:
        """Points ``alias`` at ``collection`` (atomically moving it when it exists)."""
        self._backend.set_alias(alias, collection)

    def delete_alias(self, alias: str) -> None:
        self._backend.delete_alias(alias)

    def reindex(self, source: str, *, model: str, into: str, batch: Optional[int] = None, resume: bool = False) -> Dict[str, Any]:
        """Re-embeds the document collection ``source`` with ``model`` (a directory; on a
        server, a configured model name) into the new collection ``into``, which keeps the
        source's settings; ``resume`` continues into an existing target. Blocks until done
        (on a server, by following its job) and returns the report. Then compare the two with
        :meth:`Collection.evaluate_configs` (``compare=into``) and switch an alias with
        :meth:`set_alias`."""
        req: Dict[str, Any] = {"model": model, "into": into, "resume": resume}
        if batch is not None:
            req["batch"] = batch
        return self._backend.reindex(source, req)

    def embed(
        self,
        texts: Union[str, Sequence[str]],
        *,
        model: Optional[str] = None,
        kind: str = "plain",
        dimensions: Optional[int] = None,
    ) -> np.ndarray:
        """Embeds texts with a model (a directory, a configured name, or on a server a served
        name): an ``n × d`` float32 array (one row for a single string). ``kind`` query or
        passage adds the model's prefixes; ``dimensions`` truncates and re-normalises."""
        single = isinstance(texts, str)
        arr = self._backend.embed([texts] if single else list(texts), model, kind=kind, dimensions=dimensions)
        return arr[0] if single else arr

    def rerank(self, query: str, documents: Sequence[str], *, model: str) -> List[float]:
        """Cross-encoder scores of ``documents`` for ``query``, in input order."""
        return list(self._backend.rerank(query, list(documents), model))

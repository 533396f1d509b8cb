"""LangChain vector store over a Sextant collection: :class:`SextantVectorStore`.

The store works the same on an embedded database (``sextant.open``) and on a server
(``sextant.connect``), since it only uses :class:`sextant.Database`'s public calls. Texts are
embedded by the LangChain ``Embeddings`` object given; the collection (one space, cosine by
default, its dimension taken from the first batch) is made by the first write.

Each LangChain document is one point whose payload has the shape of the document itself::

    {"id": "<the LangChain id>", "page_content": "<text>", "metadata": {...}}

so user metadata sits under ``metadata`` and can never collide with the store's own keys;
metadata filters address it as ``metadata.<key>``.

Point ids. A Sextant collection holds ids of one kind: integers, UUIDs or other strings.
LangChain ids are any strings, often mixed (generated UUIDs next to ids such as ``"doc-1"``), so
the store derives the point id from the LangChain id: a UUID (``8-4-4-4-12`` hex) is used as
it is, any other string is mapped to ``uuid5(ID_NAMESPACE, id)``; every point of the
collection then has a UUID id, and the LangChain id, spelled exactly as given, is kept in the
payload. :func:`point_id` gives the mapping to code that reads the collection directly.

Example::

    import sextant
    from sextant.langchain import SextantVectorStore

    store = SextantVectorStore(embeddings, "notes", db=sextant.open("./data"))
    store.add_texts(["Falcons stoop on prey."], metadatas=[{"topic": "birds"}])
    docs = store.similarity_search("how do falcons hunt", k=3, filter={"topic": "birds"})
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Type

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from ._api import Collection, Database, Hit
from .errors import NotFound

#: The collection used when none is named.
DEFAULT_COLLECTION = "langchain"
#: The metric of a collection the store makes.
DEFAULT_METRIC = "cosine"
#: Payload key of the LangChain id.
ID_KEY = "id"
#: Payload key of ``Document.page_content``.
PAGE_CONTENT_KEY = "page_content"
#: Payload key of ``Document.metadata`` (a nested object).
METADATA_KEY = "metadata"
#: Namespace of the UUIDs derived from LangChain ids that are not UUIDs (see :func:`point_id`).
ID_NAMESPACE = uuid.UUID("6f1c3b0e-5a8d-4d52-9c7e-2b1f0d3a9e41")
#: Candidates fetched for maximal marginal relevance when ``fetch_k`` is not given.
DEFAULT_FETCH_K = 20
#: The trade-off between relevance (1) and diversity (0) of maximal marginal relevance.
DEFAULT_LAMBDA_MULT = 0.5

_UUID_SHAPE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_NATIVE_FILTER_KEYS = ("must", "should", "must_not")
# Options of Collection.search that callers may pass through the LangChain search methods.
_SEARCH_OPTIONS = ("ef", "exact")


def point_id(doc_id: str) -> str:
    """The Sextant point id of a LangChain id: the id itself when it is a UUID (the form
    Sextant reads as one), else ``uuid5(ID_NAMESPACE, doc_id)``."""
    if not isinstance(doc_id, str):
        raise TypeError(f"ids are strings, got {doc_id!r}")
    if _UUID_SHAPE.fullmatch(doc_id):
        return doc_id.lower()
    return str(uuid.uuid5(ID_NAMESPACE, doc_id))


def metadata_filter(filter: Optional[Mapping[str, Any]]) -> Optional[Dict[str, Any]]:
    """Sextant's filter for a LangChain ``filter`` argument.

    - ``{"key": value, ...}``: metadata equality, all must hold; a list value matches any of
      its items, ``None`` matches a null value.
    - A native Sextant filter (its keys among ``must``, ``should``, ``must_not``) is passed
      through unchanged; its conditions address metadata as ``metadata.<key>``.
    """
    if filter is None:
        return None
    if not isinstance(filter, Mapping):
        raise TypeError(f"filter: expected a dict, got {type(filter).__name__}")
    if not filter:
        return None
    if all(k in _NATIVE_FILTER_KEYS for k in filter):
        return dict(filter)
    conditions: List[Dict[str, Any]] = []
    for key, value in filter.items():
        path = f"{METADATA_KEY}.{key}"
        if value is None:
            conditions.append({"is_null": {"key": path}})
        elif isinstance(value, (list, tuple, set)):
            conditions.append({"key": path, "match": {"any": list(value)}})
        elif isinstance(value, (str, int, float, bool)):
            conditions.append({"key": path, "match": {"value": value}})
        else:
            raise ValueError(
                f"filter[{key!r}]: metadata equality takes a string, number, boolean, None or a list of them, "
                f"got {value!r}; for ranges and other conditions give a native Sextant filter "
                "(must / should / must_not over keys metadata.<key>)"
            )
    return {"must": conditions}


def _cosine_relevance(similarity: float) -> float:
    # Cosine similarity in [-1, 1] to a relevance in [0, 1].
    return min(1.0, max(0.0, (1.0 + similarity) / 2.0))


def _l2_relevance(distance: float) -> float:
    # Euclidean distance of unit vectors, in [0, 2], to a relevance in [0, 1].
    return min(1.0, max(0.0, 1.0 - distance / 2.0))


_RELEVANCE: Dict[str, Callable[[float], float]] = {
    "cosine": _cosine_relevance,
    # The dot product of unit vectors is their cosine similarity.
    "dot": _cosine_relevance,
    "l2": _l2_relevance,
}


class SextantVectorStore(VectorStore):
    """A LangChain ``VectorStore`` over one collection of a Sextant database.

    Args:
        embedding: embeds documents (``embed_documents``) and queries (``embed_query``).
        collection_name: the collection (made by the first write when missing).
        db: an open :class:`sextant.Database`, embedded or served; or
        path: a data directory to open embedded (the store then owns it: :meth:`close`); or
        url: a server to connect to (``api_key`` as :func:`sextant.connect` takes it).
        metric: the metric of a collection the store makes: ``cosine`` (default), ``dot``
            or ``l2``.

    Scores. :meth:`similarity_search_with_score` returns the engine's score: the cosine
    similarity (higher is closer) on a cosine collection, the dot product on a dot one, the
    Euclidean distance (lower is closer) on an l2 one. The relevance scores of
    :meth:`similarity_search_with_relevance_scores` map them to [0, 1], 1 the closest.

    Search methods take ``filter`` (see :func:`metadata_filter`) and Sextant's ``ef`` and
    ``exact``; any other keyword is refused.
    """

    def __init__(
        self,
        embedding: Embeddings,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        db: Optional[Database] = None,
        path: Optional[str] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        metric: str = DEFAULT_METRIC,
    ):
        if sum(x is not None for x in (db, path, url)) != 1:
            raise ValueError("give exactly one of db (an open sextant.Database), path (embedded) or url (a server)")
        if metric not in _RELEVANCE:
            raise ValueError(f"metric: one of {', '.join(_RELEVANCE)}, got {metric!r}")
        import sextant

        self._owns_db = db is None
        if path is not None:
            db = sextant.open(path)
        elif url is not None:
            db = sextant.connect(url, api_key=api_key)
        assert db is not None
        self._db: Database = db
        self._embedding = embedding
        self.collection_name = collection_name
        self._metric = metric

    def __repr__(self) -> str:
        return f"SextantVectorStore({self._db!r}, collection_name={self.collection_name!r})"

    # ---- plumbing --------------------------------------------------------------------------

    @property
    def embeddings(self) -> Embeddings:
        """The embedding model of documents and queries."""
        return self._embedding

    @property
    def db(self) -> Database:
        """The Sextant database."""
        return self._db

    @property
    def collection(self) -> Collection:
        """The Sextant collection (it exists once something has been added)."""
        return self._db.collection(self.collection_name)

    def close(self) -> None:
        """Closes the database when the store opened it (``path`` or ``url``)."""
        if self._owns_db:
            self._db.close()

    def _upsert(self, pids: List[str], vectors: np.ndarray, payloads: List[Dict[str, Any]]) -> None:
        try:
            self.collection.upsert(pids, vectors, payloads)
        except NotFound:
            # First write: make the collection, then write (exist_ok: another writer may race us).
            self._db.create_collection(self.collection_name, dim=int(vectors.shape[1]), metric=self._metric, exist_ok=True)
            self.collection.upsert(pids, vectors, payloads)

    def _search(self, embedding: Sequence[float], k: int, filter: Optional[Mapping[str, Any]], with_vector: bool, kwargs: Dict[str, Any]) -> List[Hit]:
        unknown = [n for n in kwargs if n not in _SEARCH_OPTIONS]
        if unknown:
            raise TypeError(f"unknown search option(s) {', '.join(unknown)} (the store takes filter, {', '.join(_SEARCH_OPTIONS)})")
        native = metadata_filter(filter)
        if k <= 0:
            return []
        try:
            return self.collection.search(np.asarray(embedding, dtype=np.float32), k, filter=native, with_vector=with_vector, **kwargs)
        except NotFound:
            if self._db.has_collection(self.collection_name):
                raise
            return []  # nothing added yet

    @staticmethod
    def _document(pid: Any, payload: Optional[Dict[str, Any]]) -> Document:
        payload = payload or {}
        if PAGE_CONTENT_KEY in payload:
            doc_id = payload.get(ID_KEY)
            return Document(
                id=doc_id if isinstance(doc_id, str) else str(pid),
                page_content=payload[PAGE_CONTENT_KEY] or "",
                metadata=dict(payload.get(METADATA_KEY) or {}),
            )
        # A point written by other means (e.g. Collection.add with vectors): its text, if any,
        # is under "text" and the rest of the payload is its metadata.
        rest = {k: v for k, v in payload.items() if k != "text"}
        return Document(id=str(pid), page_content=payload.get("text") or "", metadata=rest)

    # ---- writing ---------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: Optional[List[Dict[str, Any]]] = None,
        *,
        ids: Optional[Sequence[Optional[str]]] = None,
        **kwargs: Any,
    ) -> List[str]:
        """Embeds ``texts`` and writes them with their ``metadatas``; returns their ids.

        ``ids`` are optional (a missing or ``None`` id becomes a new UUID4 string); an id that
        is already stored is replaced. The batch is written atomically."""
        if kwargs:
            raise TypeError(f"add_texts: unknown option(s) {', '.join(kwargs)}")
        texts = list(texts)
        n = len(texts)
        if metadatas is not None and len(metadatas) != n:
            raise ValueError(f"metadatas: {len(metadatas)} items for {n} texts")
        if ids is not None and len(ids) != n:
            raise ValueError(f"ids: {len(ids)} items for {n} texts")
        if n == 0:
            return []
        out_ids = [i if i is not None else str(uuid.uuid4()) for i in (ids if ids is not None else [None] * n)]
        vectors = np.asarray(self._embedding.embed_documents(texts), dtype=np.float32)
        payloads = [
            {ID_KEY: i, PAGE_CONTENT_KEY: t, METADATA_KEY: dict(m) if m else {}}
            for i, t, m in zip(out_ids, texts, metadatas if metadatas is not None else [None] * n)
        ]
        self._upsert([point_id(i) for i in out_ids], vectors, payloads)
        return out_ids

    def add_documents(self, documents: List[Document], **kwargs: Any) -> List[str]:
        """Writes documents; each keeps its ``Document.id`` when it has one (an ``ids``
        keyword takes precedence), the others get new UUID4 strings. Returns the ids."""
        ids = kwargs.pop("ids", None)
        if ids is None:
            ids = [d.id for d in documents]
        return self.add_texts([d.page_content for d in documents], [d.metadata for d in documents], ids=ids, **kwargs)

    def delete(self, ids: Optional[List[str]] = None, **kwargs: Any) -> Optional[bool]:
        """Deletes documents by id (ids not stored are no error), or those matching
        ``filter=`` (see :func:`metadata_filter`), or, given neither, every document.
        Returns ``True``."""
        filter = kwargs.pop("filter", None)
        if kwargs:
            raise TypeError(f"delete: unknown option(s) {', '.join(kwargs)}")
        if ids is not None and filter is not None:
            raise ValueError("delete: give ids or filter, not both")
        try:
            if ids is not None:
                if ids:
                    self.collection.delete([point_id(i) for i in ids])
            else:
                self.collection.delete(filter=metadata_filter(filter) or {})
        except NotFound:
            if self._db.has_collection(self.collection_name):
                raise
        return True

    # ---- reading ---------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> List[Document]:
        """The stored documents of ``ids``, in the order asked; ids not stored are skipped."""
        if not ids:
            return []
        try:
            points = self.collection.get([point_id(i) for i in ids])
        except NotFound:
            if self._db.has_collection(self.collection_name):
                raise
            return []
        return [self._document(p.id, p.payload) for p in points]

    def similarity_search(self, query: str, k: int = 4, filter: Optional[Mapping[str, Any]] = None, **kwargs: Any) -> List[Document]:
        """The ``k`` documents closest to ``query``, closest first."""
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """The ``k`` documents closest to ``query`` with the engine's scores (see the class)."""
        return self.similarity_search_with_score_by_vector(self._embedding.embed_query(query), k, filter=filter, **kwargs)

    def similarity_search_by_vector(
        self, embedding: List[float], k: int = 4, filter: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> List[Document]:
        """The ``k`` documents closest to ``embedding``, closest first."""
        return [d for d, _ in self.similarity_search_with_score_by_vector(embedding, k, filter=filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: Sequence[float], k: int = 4, filter: Optional[Mapping[str, Any]] = None, **kwargs: Any
    ) -> List[Tuple[Document, float]]:
        """The ``k`` documents closest to ``embedding`` with the engine's scores."""
        return [(self._document(h.id, h.payload), float(h.score)) for h in self._search(embedding, k, filter, False, kwargs)]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Maps the collection's scores to [0, 1] by its metric (see the class)."""
        metric = self._metric
        try:
            spaces = self.collection.info()["schema"]["spaces"]
            if len(spaces) == 1:
                metric = spaces[0]["metric"]
        except NotFound:
            pass  # not made yet: it will be made with self._metric
        fn = _RELEVANCE.get(metric)
        if fn is None:
            raise NotImplementedError(f"no relevance score for the metric {metric!r} of collection {self.collection_name!r}")
        return fn

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = DEFAULT_FETCH_K,
        lambda_mult: float = DEFAULT_LAMBDA_MULT,
        filter: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        """``k`` documents chosen for relevance to ``query`` and diversity among themselves
        from its ``fetch_k`` nearest (``lambda_mult`` 1: relevance only, 0: diversity only)."""
        return self.max_marginal_relevance_search_by_vector(
            self._embedding.embed_query(query), k, fetch_k, lambda_mult, filter=filter, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: List[float],
        k: int = 4,
        fetch_k: int = DEFAULT_FETCH_K,
        lambda_mult: float = DEFAULT_LAMBDA_MULT,
        filter: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> List[Document]:
        """As :meth:`max_marginal_relevance_search`, for a query vector."""
        hits = self._search(embedding, max(fetch_k, k), filter, True, kwargs)
        if not hits or k <= 0:
            return []
        query = np.asarray(embedding, dtype=np.float32)
        candidates = np.stack([np.asarray(h.vector, dtype=np.float32) for h in hits])
        # LangChain's own MMR, so the choice agrees with other stores.
        chosen = maximal_marginal_relevance(query, list(candidates), lambda_mult=lambda_mult, k=k)
        return [self._document(hits[i].id, hits[i].payload) for i in chosen]

    # ---- construction ----------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls: Type["SextantVectorStore"],
        texts: List[str],
        embedding: Embeddings,
        metadatas: Optional[List[Dict[str, Any]]] = None,
        *,
        ids: Optional[List[str]] = None,
        db: Optional[Database] = None,
        path: Optional[str] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        collection_name: str = DEFAULT_COLLECTION,
        metric: str = DEFAULT_METRIC,
        **kwargs: Any,
    ) -> "SextantVectorStore":
        """A store over ``collection_name`` of ``db`` (or of the database at ``path``, or of
        the server at ``url``) with ``texts`` added."""
        store = cls(embedding, collection_name, db=db, path=path, url=url, api_key=api_key, metric=metric)
        store.add_texts(texts, metadatas, ids=ids, **kwargs)
        return store


__all__ = ["SextantVectorStore", "point_id", "metadata_filter", "DEFAULT_COLLECTION", "ID_NAMESPACE"]

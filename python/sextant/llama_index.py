"""LlamaIndex vector store over a Sextant collection: :class:`SextantVectorStore`.

It works the same on an embedded database (``sextant.open``) and on a server
(``sextant.connect``), using only :class:`sextant.Database`'s public calls. The collection (one
space, cosine by default, its dimension taken from the first nodes) is made by the first
``add``.

Each node is one point. Its payload is LlamaIndex's own layout
(``llama_index.core.vector_stores.utils.node_to_metadata_dict``): the node's metadata at the top
level, where :class:`~llama_index.core.vector_stores.types.MetadataFilters` address it, the
whole node as JSON under ``_node_content`` (so ``metadata_dict_to_node`` rebuilds it), its
``ref_doc_id`` (also as ``doc_id`` and ``document_id``), and its text under ``text`` (the key
Sextant's own ``Hit.text`` reads). A metadata key named ``text`` is kept in the node, but
filters on ``text`` see the node's text.

Point ids. A Sextant collection holds ids of one kind (integers, UUIDs or other strings), while
node ids are any strings (UUIDs by default, names such as ``"doc-1"`` when set). A node id that
is a UUID is its point id; any other is mapped to ``uuid5(ID_NAMESPACE, node_id)``
(:func:`point_id`), so every point has a UUID id; the node id itself comes back from the node's
JSON.

Filters. ``==, !=, >, >=, <, <=, in, nin, any, all, contains, is_empty`` with ``and``, ``or``
and ``not`` conditions, nested, become a Sextant filter. As in LlamaIndex's own
``SimpleVectorStore``, ``!=`` and ``nin`` hold for a node without the key; every other
operator needs it. Ranges compare numbers, or RFC 3339 datetimes. ``text_match`` and
``text_match_insensitive`` are refused with :class:`sextant.InvalidInput`, never ignored.

Example::

    import sextant
    from llama_index.core import StorageContext, VectorStoreIndex
    from sextant.llama_index import SextantVectorStore

    store = SextantVectorStore("notes", db=sextant.open("./data"))
    index = VectorStoreIndex.from_documents(docs, storage_context=StorageContext.from_defaults(vector_store=store))
"""

from __future__ import annotations

import re
import uuid
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.indices.query.embedding_utils import get_top_k_mmr_embeddings
from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict

from ._api import Collection, Database, Hit
from .errors import InvalidInput, NotFound

#: The collection used when none is named.
DEFAULT_COLLECTION = "llama_index"
#: The metric of a collection the store makes.
DEFAULT_METRIC = "cosine"
#: Payload key of a node's text.
TEXT_KEY = "text"
#: Payload key of a node's ``ref_doc_id`` (the document it came from).
REF_DOC_ID_KEY = "ref_doc_id"
#: Namespace of the UUIDs derived from node ids that are not UUIDs (see :func:`point_id`).
ID_NAMESPACE = uuid.UUID("0d9c6a53-2f4e-4b8a-a1d7-5e3c9f2b7a64")
#: MMR queries fetch this many times ``similarity_top_k`` candidates unless ``mmr_prefetch_k``
#: or ``mmr_prefetch_factor`` says otherwise (as LlamaIndex's own stores do).
DEFAULT_MMR_PREFETCH_FACTOR = 4.0

_UUID_SHAPE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}")
_RANGES = {FilterOperator.GT: "gt", FilterOperator.GTE: "gte", FilterOperator.LT: "lt", FilterOperator.LTE: "lte"}
_CONDITIONS = {FilterCondition.AND: "must", FilterCondition.OR: "should", FilterCondition.NOT: "must_not"}


def point_id(node_id: str) -> str:
    """The Sextant point id of a node id: the id itself when it is a UUID (the form Sextant
    reads as one), else ``uuid5(ID_NAMESPACE, node_id)``."""
    if not isinstance(node_id, str):
        raise TypeError(f"node ids are strings, got {node_id!r}")
    if _UUID_SHAPE.fullmatch(node_id):
        return node_id.lower()
    return str(uuid.uuid5(ID_NAMESPACE, node_id))


def _scalar(f: MetadataFilter) -> Any:
    if isinstance(f.value, (str, int, float)):
        return f.value
    raise InvalidInput(f"filters: {f.key} {f.operator.value} takes a string or a number, got {f.value!r}", "filters")


def _values(f: MetadataFilter) -> List[Any]:
    if isinstance(f.value, list):
        return list(f.value)
    raise InvalidInput(f"filters: {f.key} {f.operator.value} takes a list, got {f.value!r}", "filters")


def _condition(f: MetadataFilter) -> Dict[str, Any]:
    """One LlamaIndex filter as a Sextant condition (a nested filter where it needs one)."""
    op, key = f.operator, f.key
    if op == FilterOperator.EQ or op == FilterOperator.CONTAINS:
        # On an array, Sextant's match holds when any element matches: that is `contains`.
        return {"key": key, "match": {"value": _scalar(f)}}
    if op == FilterOperator.NE:
        return {"must_not": [{"key": key, "match": {"value": _scalar(f)}}]}
    if op in _RANGES:
        return {"key": key, "range": {_RANGES[op]: _scalar(f)}}
    if op == FilterOperator.IN or op == FilterOperator.ANY:
        return {"key": key, "match": {"any": _values(f)}}
    if op == FilterOperator.NIN:
        return {"must_not": [{"key": key, "match": {"any": _values(f)}}]}
    if op == FilterOperator.ALL:
        return {"must": [{"key": key, "match": {"value": v}} for v in _values(f)]}
    if op == FilterOperator.IS_EMPTY:
        return {"is_empty": {"key": key}}
    raise InvalidInput(
        f"filters: the operator {op.value!r} (on {key!r}) is not supported by Sextant's filters "
        "(supported: ==, !=, >, >=, <, <=, in, nin, any, all, contains, is_empty)",
        "filters",
    )


def metadata_filters(filters: Optional[MetadataFilters]) -> Optional[Dict[str, Any]]:
    """Sextant's filter for LlamaIndex ``MetadataFilters`` (see the module's notes)."""
    if filters is None or not filters.filters:
        return None
    condition = filters.condition or FilterCondition.AND
    if condition not in _CONDITIONS:
        raise InvalidInput(f"filters: unknown condition {condition!r}", "filters")
    conditions = []
    for f in filters.filters:
        if isinstance(f, MetadataFilters):
            nested = metadata_filters(f)
            if nested is not None:
                conditions.append(nested)
        else:
            conditions.append(_condition(f))
    return {_CONDITIONS[condition]: conditions}


def _and(*filters: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    parts = [f for f in filters if f]
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"must": parts}


class SextantVectorStore(BasePydanticVectorStore):
    """A LlamaIndex vector store over one collection of a Sextant database.

    Args:
        collection_name: the collection (made by the first ``add`` when missing).
        db: an open :class:`sextant.Database`, embedded or served; or
        path: a data directory to open embedded (the store then owns it: :meth:`close`); or
        url: a server to connect to (``api_key`` as :func:`sextant.connect` takes it).
        metric: the metric of a collection the store makes: ``cosine`` (default), ``dot``
            or ``l2``. Query similarities are the engine's scores: cosine similarity, dot
            product, or Euclidean distance (lower is closer) on ``l2``.

    Queries take ``query_embedding``, ``similarity_top_k``, ``filters``, ``doc_ids``,
    ``node_ids`` and the modes ``default`` and ``mmr`` (``mmr_threshold``); other modes
    are refused.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    collection_name: str = DEFAULT_COLLECTION
    metric: str = DEFAULT_METRIC

    _db: Database = PrivateAttr()
    _owns_db: bool = PrivateAttr(default=False)

    def __init__(
        self,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        db: Optional[Database] = None,
        path: Optional[str] = None,
        url: Optional[str] = None,
        api_key: Optional[str] = None,
        metric: str = DEFAULT_METRIC,
        **kwargs: Any,
    ) -> None:
        if sum(x is not None for x in (db, path, url)) != 1:
            raise ValueError("give exactly one of db (an open sextant.Database), path (embedded) or url (a server)")
        super().__init__(collection_name=collection_name, metric=metric, **kwargs)
        import sextant

        self._owns_db = db is None
        if path is not None:
            db = sextant.open(path)
        elif url is not None:
            db = sextant.connect(url, api_key=api_key)
        self._db = db

    @classmethod
    def class_name(cls) -> str:
        return "SextantVectorStore"

    @property
    def client(self) -> Database:
        """The Sextant database."""
        return self._db

    @property
    def collection(self) -> Collection:
        """The Sextant collection (it exists once nodes have been added)."""
        return self._db.collection(self.collection_name)

    def close(self) -> None:
        """Closes the database when the store opened it (``path`` or ``url``)."""
        if self._owns_db:
            self._db.close()

    def _missing(self) -> bool:
        """After a NotFound: whether it was the collection that is missing (nothing added yet)."""
        return not self._db.has_collection(self.collection_name)

    # ---- writing ---------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **add_kwargs: Any) -> List[str]:
        """Writes nodes (their embeddings, text, metadata and ref_doc_id) atomically; a node
        id already stored is replaced. Returns the node ids."""
        if add_kwargs:
            raise TypeError(f"add: unknown option(s) {', '.join(add_kwargs)}")
        nodes = list(nodes)
        if not nodes:
            return []
        vectors = np.asarray([n.get_embedding() for n in nodes], dtype=np.float32)
        payloads = []
        for n in nodes:
            payload = node_to_metadata_dict(n, remove_text=True, flat_metadata=self.flat_metadata)
            payload[TEXT_KEY] = n.get_content(metadata_mode=MetadataMode.NONE)
            payloads.append(payload)
        pids = [point_id(n.node_id) for n in nodes]
        try:
            self.collection.upsert(pids, vectors, payloads)
        except NotFound:
            if not self._missing():
                raise
            self._db.create_collection(self.collection_name, dim=int(vectors.shape[1]), metric=self.metric, exist_ok=True)
            self.collection.upsert(pids, vectors, payloads)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Deletes the nodes of the document ``ref_doc_id`` (none is no error)."""
        if delete_kwargs:
            raise TypeError(f"delete: unknown option(s) {', '.join(delete_kwargs)}")
        self._delete({"must": [{"key": REF_DOC_ID_KEY, "match": {"value": ref_doc_id}}]})

    def delete_nodes(
        self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None, **delete_kwargs: Any
    ) -> None:
        """Deletes nodes by id and/or by filters (both: the nodes matching both)."""
        if delete_kwargs:
            raise TypeError(f"delete_nodes: unknown option(s) {', '.join(delete_kwargs)}")
        if node_ids is None and filters is None:
            raise InvalidInput("delete_nodes: give node_ids or filters (clear() deletes everything)", "node_ids")
        self._delete(_and(self._id_filter(node_ids), metadata_filters(filters)) or {})

    def _delete(self, filter: Dict[str, Any]) -> None:
        try:
            self.collection.delete(filter=filter)
        except NotFound:
            if not self._missing():
                raise

    def clear(self) -> None:
        """Deletes the collection (the next ``add`` makes it again)."""
        if self._db.has_collection(self.collection_name):
            self._db.delete_collection(self.collection_name)

    # ---- reading ---------------------------------------------------------------------------

    @staticmethod
    def _id_filter(node_ids: Optional[List[str]]) -> Optional[Dict[str, Any]]:
        if node_ids is None:
            return None
        return {"must": [{"has_id": [point_id(i) for i in node_ids]}]}

    @staticmethod
    def _node(payload: Dict[str, Any]) -> BaseNode:
        return metadata_dict_to_node(payload, text=payload.get(TEXT_KEY))

    def get_nodes(self, node_ids: Optional[List[str]] = None, filters: Optional[MetadataFilters] = None) -> List[BaseNode]:
        """Nodes by id (in the order asked, ids not stored skipped) and/or by filters."""
        try:
            if filters is None and node_ids is not None:
                return [self._node(p.payload or {}) for p in self.collection.get([point_id(i) for i in node_ids])]
            return [self._node(p.payload or {}) for p in self.collection.points(_and(self._id_filter(node_ids), metadata_filters(filters)))]
        except NotFound:
            if self._missing():
                return []
            raise

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """The ``similarity_top_k`` nodes nearest ``query_embedding`` that pass ``filters``
        (and belong to ``doc_ids`` / are among ``node_ids`` when given), nearest first."""
        if query.query_embedding is None:
            raise InvalidInput("query: Sextant's vector store needs query_embedding", "query_embedding")
        if query.mode not in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.MMR):
            raise InvalidInput(f"query: mode {query.mode.value!r} is not supported (default, mmr)", "mode")
        mmr = query.mode == VectorStoreQueryMode.MMR
        k = query.similarity_top_k
        if k <= 0:
            return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
        fetch_k = k
        if mmr:
            prefetch_k = kwargs.get("mmr_prefetch_k")
            factor = kwargs.get("mmr_prefetch_factor", DEFAULT_MMR_PREFETCH_FACTOR)
            fetch_k = max(k, int(prefetch_k) if prefetch_k is not None else int(k * factor))
        doc_filter = None
        # Empty lists place no restriction (the index's retriever passes node_ids=[]).
        if query.doc_ids:
            doc_filter = {"must": [{"key": REF_DOC_ID_KEY, "match": {"any": list(query.doc_ids)}}]}
        native = _and(metadata_filters(query.filters), doc_filter, self._id_filter(query.node_ids or None))
        try:
            hits: List[Hit] = self.collection.search(
                np.asarray(query.query_embedding, dtype=np.float32), fetch_k, filter=native, with_vector=mmr
            )
        except NotFound:
            if self._missing():
                return VectorStoreQueryResult(nodes=[], similarities=[], ids=[])
            raise
        scores = [float(h.score) for h in hits]
        if mmr and hits:
            threshold = query.mmr_threshold if query.mmr_threshold is not None else kwargs.get("mmr_threshold")
            scores, order = get_top_k_mmr_embeddings(
                list(query.query_embedding),
                [np.asarray(h.vector, dtype=np.float32).tolist() for h in hits],
                similarity_top_k=k,
                embedding_ids=list(range(len(hits))),
                mmr_threshold=threshold,
            )
            hits = [hits[i] for i in order]
        nodes = [self._node(h.payload or {}) for h in hits]
        return VectorStoreQueryResult(nodes=nodes, similarities=list(scores), ids=[n.node_id for n in nodes])


__all__ = ["SextantVectorStore", "point_id", "metadata_filters", "DEFAULT_COLLECTION", "ID_NAMESPACE"]

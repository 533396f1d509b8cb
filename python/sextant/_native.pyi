"""Type stubs of the extension module. ``Database`` here is also the *backend protocol*: the
HTTP backend (``sextant._http.HttpBackend``) takes the same calls and answers with the same
shapes, which are the HTTP server's JSON (``docs/server.md``), except ``search``, which answers
with :class:`Hit` objects on both backends."""

from typing import Any, Callable, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

__version__: str
#: File extensions a directory walk of ``ingest`` reads (text formats and pictures).
INGEST_EXTENSIONS: List[str]

Json = Any
Tenant = Union[int, str, None]

class Hit:
    """A search result: a point (vector search) or a chunk of a document (text search).

    ``score`` is a similarity for cosine/dot, a distance for l2/l1, the fused or reranked score
    for text search; ``vector`` (when asked for) is an array, or a dict of arrays by space;
    ``doc_id``, ``sources`` (score by source) and ``rerank_score`` are set by text search.
    Immutable; equal when every field is equal; not hashable; picklable."""

    id: Union[int, str]
    score: float
    payload: Optional[Dict[str, Json]]
    vector: Union[npt.NDArray[np.float32], Dict[str, npt.NDArray[np.float32]], None]
    doc_id: Optional[str]
    sources: Optional[Dict[str, float]]
    rerank_score: Optional[float]
    def __init__(
        self,
        id: Union[int, str],
        score: float,
        payload: Optional[Dict[str, Json]] = None,
        vector: Any = None,
        doc_id: Optional[str] = None,
        sources: Optional[Dict[str, float]] = None,
        rerank_score: Optional[float] = None,
    ) -> None: ...
    @property
    def text(self) -> Optional[str]:
        """The chunk's text (document collections), else a payload's ``text`` field."""

class Database:
    def __init__(
        self,
        path: str,
        models: Optional[Dict[str, str]] = None,
        embedding_cache: int = 0,
        threads: Optional[int] = None,
        master_key_file: Optional[str] = None,
    ) -> None: ...
    @property
    def path(self) -> str: ...
    def list_collections(self) -> List[str]: ...
    def aliases(self) -> Dict[str, str]: ...
    def set_alias(self, alias: str, collection: str) -> None: ...
    def delete_alias(self, alias: str) -> None: ...
    def create_collection(self, spec: Dict[str, Json]) -> None:
        """``spec``: the body of ``PUT /collections/{name}`` plus ``name``."""
    def delete_collection(self, name: str) -> None: ...
    def has_collection(self, name: str) -> bool: ...
    def info(self, name: str) -> Dict[str, Json]: ...
    def upsert(
        self,
        name: str,
        ids: List[Union[int, str]],
        vectors: Union[npt.NDArray[np.float32], Dict[str, npt.NDArray[np.float32]]],
        payloads: Optional[List[Optional[Dict[str, Json]]]] = None,
        tenant: Tenant = None,
        all_tenants: bool = False,
        expires_at: Optional[List[Optional[str]]] = None,
        ttl: Optional[List[Optional[int]]] = None,
    ) -> int:
        """Returns the WAL sequence."""
    def search(
        self,
        name: str,
        vector: npt.NDArray[np.float32],
        k: int = 10,
        ef: Optional[int] = None,
        filter: Optional[Json] = None,
        space: Optional[str] = None,
        with_payload: bool = True,
        with_vector: bool = False,
        tenant: Tenant = None,
        all_tenants: bool = False,
        exact: bool = False,
        nprobe: Optional[int] = None,
    ) -> List[Hit]:
        """Nearest neighbours, best first."""
    def get(self, name: str, ids: List[Union[int, str]], with_payload: bool = True, with_vector: bool = False, tenant: Tenant = None, all_tenants: bool = False) -> List[Dict[str, Json]]: ...
    def delete(self, name: str, ids: Optional[List[Union[int, str]]] = None, filter: Optional[Json] = None, tenant: Tenant = None, all_tenants: bool = False) -> int: ...
    def count(self, name: str, filter: Optional[Json] = None, tenant: Tenant = None, all_tenants: bool = False) -> int: ...
    def scroll(
        self,
        name: str,
        filter: Optional[Json] = None,
        limit: int = 100,
        offset: Optional[str] = None,
        order_by: Optional[str] = None,
        descending: bool = False,
        with_payload: bool = True,
        tenant: Tenant = None,
        all_tenants: bool = False,
    ) -> Tuple[List[Dict[str, Json]], Optional[str]]: ...
    def tenants(self, name: str) -> List[Dict[str, Json]]:
        """``[{"tenant": t, "points": n}]``."""
    def drop_tenant(self, name: str, tenant: Union[int, str]) -> int: ...
    def optimize(self, name: str) -> None: ...
    def eval(self, name: str, request: Dict[str, Json], tenant: Tenant = None, all_tenants: bool = False) -> Dict[str, Json]:
        """``request``: ``EvalOptions`` (the body of ``POST /collections/{name}/eval`` without
        the tenant); answers the report with its Markdown in ``markdown``."""
    def reindex(self, name: str, request: Dict[str, Json]) -> Dict[str, Json]:
        """``request``: ``{"model", "into", "batch"?, "resume"?}``; blocks until done."""
    def advise(self, name: str, request: Dict[str, Json]) -> Dict[str, Json]:
        """``request``: ``AdviseOptions`` (the body of ``POST /collections/{name}/advise``);
        blocks until done and answers the advice."""
    def drift(self, name: str) -> Optional[Dict[str, Json]]: ...
    def drift_pin(self, name: str, request: Dict[str, Json]) -> Dict[str, Json]: ...
    def drift_add_canary(self, name: str, request: Dict[str, Json]) -> Dict[str, Json]: ...
    def drift_canaries(self, name: str) -> List[Dict[str, Json]]: ...
    def drift_remove_canary(self, name: str, canary: str) -> None: ...
    def drift_check(self, name: str) -> Dict[str, Json]: ...
    def query(self, name: str, request: Dict[str, Json], tenant: Tenant = None, all_tenants: bool = False) -> List[Dict[str, Json]]:
        """``request``: ``TextSearchRequest`` (the body of ``POST /collections/{name}/query``
        without the tenant); answers ``[{"doc_id", "score", "chunks": [{"id", "doc_id",
        "score", "sources", "rerank_score"?, "payload"}]}]``."""
    def ask(self, name: str, request: Dict[str, Json], tenant: Tenant = None, all_tenants: bool = False) -> Dict[str, Json]:
        """``request``: the service's ``AskRequest`` (``question``, ``k``, ``budget``,
        ``retrieval``, ``llm``); answers ``{"question", "answer", "context"}``."""
    def add_documents(self, name: str, documents: List[Dict[str, Json]], options: Optional[Dict[str, Json]] = None, tenant: Tenant = None, all_tenants: bool = False) -> Dict[str, Json]:
        """``documents``: ``{"id", "text", "title"?, "fields"?}``; ``options``: ingest options;
        answers the ingest report."""
    def ingest_paths(
        self,
        name: str,
        paths: List[str],
        options: Optional[Dict[str, Json]] = None,
        tenant: Tenant = None,
        all_tenants: bool = False,
        progress: Optional[Callable[[int], None]] = None,
    ) -> Dict[str, Json]: ...
    def delete_document(self, name: str, doc_id: str, tenant: Tenant = None, all_tenants: bool = False) -> int: ...
    def delete_older_than(self, name: str, older_than: str, tenant: Tenant = None, all_tenants: bool = False) -> Dict[str, Json]: ...
    def embed(self, texts: List[str], model: str, kind: str = "plain", dimensions: Optional[int] = None) -> npt.NDArray[np.float32]: ...
    def rerank(self, query: str, documents: List[str], model: str) -> List[float]: ...
    def close(self) -> None: ...

def evaluate(run: Dict[str, Dict[str, float]], qrels: Dict[str, Dict[str, int]]) -> Dict[str, Json]: ...


class HttpTransport:
    """The HTTP backend's transport for ``http://`` servers: a pooled keep-alive client, the GIL
    released while it waits. Answers ``(status, content_type, retry_after, body)``; no answer
    raises ``TimeoutError``, ``ConnectionRefusedError`` or ``ConnectionResetError``."""

    def __init__(self, base: str, headers: List[Tuple[str, str]], timeout: float) -> None: ...
    def request(
        self, method: str, target: str, body: Optional[bytes] = None, content_type: str = "application/json"
    ) -> Tuple[int, Optional[str], Optional[str], bytes]: ...
    def search(
        self,
        target: str,
        vector: npt.NDArray[np.float32],
        k: int,
        ef: Optional[int] = None,
        with_payload: bool = True,
        with_vector: bool = False,
        extra: Optional[bytes] = None,
    ) -> Tuple[int, Optional[str], Optional[str], Union[List[Hit], bytes]]:
        """A vector search; a 200 answer's hits as :class:`Hit`, any other answer's body."""

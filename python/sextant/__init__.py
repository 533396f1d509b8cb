"""Sextant: an embedding database — dense, sparse and hybrid retrieval with cited RAG context.

Embedded (the engine in this process)::

    import sextant
    db = sextant.open("./data")
    kb = db.collection("kb")                      # made by its first write
    kb.add(ids=["a", "b"], texts=["Falcons stoop on prey.", "Owls hunt at night."])
    hits = kb.search("how do falcons hunt", k=5)
    ctx = kb.ask("how do falcons hunt?", budget=1024)

Served: ``db = sextant.connect("http://127.0.0.1:6480", api_key="sxk_…")`` gives an object with
the same methods, so code moves between the two by changing that one line.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional

from ._api import Collection, Database, DocumentHit, Hit, Point
from .errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    InternalError,
    InvalidInput,
    NotFound,
    Overloaded,
    SextantError,
    Unauthorized,
)

__version__ = "0.1.0"


def open(  # noqa: A001 - the package's verb, like sqlite3.connect / lancedb.connect
    path: str,
    *,
    models: Optional[Dict[str, str]] = None,
    embedding_cache: int = 0,
    threads: Optional[int] = None,
    master_key_file: Optional[str] = None,
) -> Database:
    """Opens (creating when missing) a data directory with the engine in this process.

    ``models`` maps names to model directories (``{"minilm": "/models/all-MiniLM-L6-v2"}``) so
    that calls can name them; ``embedding_cache`` keeps that many embeddings per model;
    ``threads`` caps the threads a model uses (default: every core); ``master_key_file``
    (default ``$SEXTANT_MASTER_KEY_FILE``, else the key in ``$SEXTANT_MASTER_KEY``) opens
    encrypted collections and is needed to create one. One process may hold a data directory
    at a time."""
    from ._embedded import EmbeddedBackend

    backend = EmbeddedBackend(path, models=models, embedding_cache=embedding_cache, threads=threads, master_key_file=master_key_file)
    return Database(backend, f"path={str(path)!r}")


def connect(url: str, *, api_key: Optional[str] = None, timeout: float = 60.0) -> Database:
    """Connects to a ``sextant serve`` server. ``api_key`` defaults to ``$SEXTANT_API_KEY``."""
    from ._http import HttpBackend

    return Database(HttpBackend(url, api_key=api_key, timeout=timeout), f"url={url!r}")


def evaluate(run: Mapping[str, Mapping[str, float]], qrels: Mapping[str, Mapping[str, int]]) -> Dict[str, Any]:
    """IR metrics of a run (query id → {document id: score}) against judgements (query id →
    {document id: grade}): ``ndcg_at_10``, ``recall_at_100``, ``mrr_at_10``, ``map`` and the
    number of judged ``queries`` — the engine's own evaluator (trec_eval's tie-breaking)."""
    from . import _native

    return _native.evaluate({q: dict(d) for q, d in run.items()}, {q: dict(r) for q, r in qrels.items()})


__all__ = [
    "open",
    "connect",
    "evaluate",
    "Database",
    "Collection",
    "Hit",
    "DocumentHit",
    "Point",
    "SextantError",
    "NotFound",
    "AlreadyExists",
    "InvalidInput",
    "Conflict",
    "Unauthorized",
    "Forbidden",
    "Overloaded",
    "InternalError",
]

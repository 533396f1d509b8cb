"""The embedded backend: the engine in this process (``sextant._native``)."""

from __future__ import annotations

from typing import Any, Dict, Optional

from . import _native
from .errors import InvalidInput

#: The embedding model used when none is named: where ``scripts/setup-models.sh`` puts
#: all-MiniLM-L6-v2, relative to the working directory (as for ``sextant ingest``).
DEFAULT_MODEL = "models/all-MiniLM-L6-v2"


class EmbeddedBackend:
    """Adapts ``_native.Database`` to the backend calls of ``sextant._api``. The hot calls are
    the native methods themselves (bound once here), so they cost no extra Python frame."""

    def __init__(
        self,
        path: str,
        models: Optional[Dict[str, str]] = None,
        embedding_cache: int = 0,
        threads: Optional[int] = None,
        master_key_file: Optional[str] = None,
    ):
        self._db = _native.Database(
            str(path), models=models, embedding_cache=embedding_cache, threads=threads, master_key_file=master_key_file
        )
        db = self._db
        for name in (
            "list_collections",
            "aliases",
            "set_alias",
            "delete_alias",
            "create_collection",
            "delete_collection",
            "has_collection",
            "info",
            "upsert",
            "search",
            "get",
            "delete",
            "count",
            "scroll",
            "tenants",
            "drop_tenant",
            "optimize",
            "query",
            "add_documents",
            "ingest_paths",
            "delete_document",
            "delete_older_than",
            "rerank",
            "eval",
            "reindex",
            "advise",
            "drift",
            "drift_pin",
            "drift_add_canary",
            "drift_canaries",
            "drift_remove_canary",
            "drift_check",
            "close",
        ):
            setattr(self, name, getattr(db, name))

    @property
    def path(self) -> str:
        return str(self._db.path)

    def embed(self, texts, model, *, kind="plain", dimensions=None):
        return self._db.embed(texts, model or DEFAULT_MODEL, kind=kind, dimensions=dimensions)

    def ask(self, name, req, retrieval, *, answer=False, llm=None, tenant=None, all_tenants=False):
        body: Dict[str, Any] = dict(req)
        if retrieval:
            body["retrieval"] = dict(retrieval, text="")
        if llm is not None:
            body["llm"] = llm
        elif answer:
            raise InvalidInput(
                "answer: an embedded database has no configured language model; give llm=URL "
                "(an OpenAI-compatible endpoint) or leave answer False for the cited context",
                "answer",
            )
        return self._db.ask(name, body, tenant=tenant, all_tenants=all_tenants)

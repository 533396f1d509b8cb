"""sextant.llama_index.SextantVectorStore under a LlamaIndex VectorStoreIndex, embedded and
served (``conftest.py``'s ``db`` fixture): retrieval with metadata filters, a query engine,
deletion by document, the filter translation and its refusals."""

from __future__ import annotations

from typing import Iterator, List

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

import sextant
from sextant.llama_index import SextantVectorStore, metadata_filters, point_id

#: One dimension per word: texts sharing words are close, so rankings are predictable.
VOCABULARY = ("falcon", "owl", "cat", "dog", "hunt", "night", "fish", "sleep")


class WordEmbedding(BaseEmbedding):
    """A deterministic 8-dimensional embedding: how often each VOCABULARY word occurs (plus a
    small constant, so no text embeds to the zero vector)."""

    def _embed(self, text: str) -> List[float]:
        words = text.lower().replace(".", " ").split()
        return [sum(w.startswith(v) for w in words) + 0.01 for v in VOCABULARY]

    def _get_text_embedding(self, text: str) -> List[float]:
        return self._embed(text)

    def _get_query_embedding(self, query: str) -> List[float]:
        return self._embed(query)

    async def _aget_query_embedding(self, query: str) -> List[float]:
        return self._embed(query)


@pytest.fixture()
def store(db, name) -> Iterator[SextantVectorStore]:
    store = SextantVectorStore(name, db=db)
    yield store
    store.clear()


DOCS = [
    Document(text="The falcon hunts at dawn.", doc_id="falcon", metadata={"kind": "bird", "year": 2020, "tags": ["sky", "fast"]}),
    Document(text="The owl hunts at night.", doc_id="owl", metadata={"kind": "bird", "year": 2022, "tags": ["night"]}),
    Document(text="The cat hunts fish at night.", doc_id="cat", metadata={"kind": "mammal", "year": 2023, "tags": ["home"]}),
    Document(text="The dog sleeps.", doc_id="dog", metadata={"kind": "mammal", "year": 2024}),
]


@pytest.fixture()
def index(store) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(DOCS, storage_context=StorageContext.from_defaults(vector_store=store), embed_model=WordEmbedding())


def _retrieve(index, query: str, k: int = 10, **filters) -> List[str]:
    """Ref doc ids of the nodes retrieved for ``query``, nearest first."""
    mf = MetadataFilters(**filters) if filters else None
    return [n.node.ref_doc_id for n in index.as_retriever(similarity_top_k=k, filters=mf).retrieve(query)]


def F(key, value, op="=="):
    return MetadataFilter(key=key, value=value, operator=FilterOperator(op))


def test_retrieve_with_filters(index):
    assert _retrieve(index, "owl at night", k=1) == ["owl"]
    assert _retrieve(index, "night hunt", k=2) == ["owl", "cat"]
    assert _retrieve(index, "night", filters=[F("kind", "mammal")])[0] == "cat"
    assert set(_retrieve(index, "x", filters=[F("kind", "mammal")])) == {"cat", "dog"}
    assert set(_retrieve(index, "x", filters=[F("kind", "bird", "!=")])) == {"cat", "dog"}
    assert set(_retrieve(index, "x", filters=[F("year", 2022, ">")])) == {"cat", "dog"}
    assert set(_retrieve(index, "x", filters=[F("year", 2022, ">=")])) == {"owl", "cat", "dog"}
    assert set(_retrieve(index, "x", filters=[F("year", 2022, "<")])) == {"falcon"}
    assert set(_retrieve(index, "x", filters=[F("year", 2022, "<=")])) == {"falcon", "owl"}
    assert set(_retrieve(index, "x", filters=[F("year", [2020, 2024], "in")])) == {"falcon", "dog"}
    assert set(_retrieve(index, "x", filters=[F("year", [2020, 2024], "nin")])) == {"owl", "cat"}
    assert set(_retrieve(index, "x", filters=[F("tags", "night", "contains")])) == {"owl"}
    assert set(_retrieve(index, "x", filters=[F("tags", ["sky", "home"], "any")])) == {"falcon", "cat"}
    assert set(_retrieve(index, "x", filters=[F("tags", ["sky", "fast"], "all")])) == {"falcon"}
    assert set(_retrieve(index, "x", filters=[F("tags", None, "is_empty")])) == {"dog"}
    # AND, OR, NOT and nesting.
    both = [F("kind", "bird"), F("year", 2021, ">")]
    assert set(_retrieve(index, "x", filters=both)) == {"owl"}
    assert set(_retrieve(index, "x", filters=both, condition=FilterCondition.OR)) == {"falcon", "owl", "cat", "dog"}
    assert set(_retrieve(index, "x", filters=[F("year", 2020), F("year", 2024)], condition="or")) == {"falcon", "dog"}
    assert set(_retrieve(index, "x", filters=[F("kind", "bird")], condition="not")) == {"cat", "dog"}
    nested = MetadataFilters(filters=[F("year", 2020), F("year", 2023)], condition="or")
    assert set(_retrieve(index, "x", filters=[F("kind", "mammal"), nested])) == {"cat"}
    # Every retrieved node really passes the filter, and comes back whole.
    for n in index.as_retriever(similarity_top_k=10, filters=MetadataFilters(filters=[F("kind", "bird")])).retrieve("hunt"):
        assert n.node.metadata["kind"] == "bird" and "hunts" in n.node.get_content() and n.score is not None


def test_query_engine_and_delete_by_ref_doc(index, store):
    response = index.as_query_engine(llm=MockLLM(), similarity_top_k=1).query("owl at night")
    assert [n.node.ref_doc_id for n in response.source_nodes] == ["owl"]
    assert "The owl hunts at night." in str(response)
    index.delete_ref_doc("owl")
    assert "owl" not in _retrieve(index, "owl at night")
    assert store.collection.count() == 3
    store.delete("no-such-doc")  # no error
    # Inserting again after a delete.
    index.insert(Document(text="An owl again at night.", doc_id="owl2", metadata={"kind": "bird", "year": 2025}))
    assert _retrieve(index, "owl", k=1) == ["owl2"]


def test_store_calls(store):
    emb = WordEmbedding()
    nodes = [
        TextNode(id_="n-1", text="falcon", embedding=emb.get_text_embedding("falcon"), metadata={"kind": "bird"}),
        TextNode(id_="7B1C0F6E-3C55-4E4B-9A0B-2D7A1E3F4C5D", text="cat", embedding=emb.get_text_embedding("cat"), metadata={"kind": "mammal"}),
        TextNode(text="dog dog", embedding=emb.get_text_embedding("dog dog"), metadata={"kind": "mammal"}),
    ]
    empty = store.query(VectorStoreQuery(query_embedding=emb.get_query_embedding("cat"), similarity_top_k=2))
    assert empty.nodes == [] and empty.ids == []
    assert store.get_nodes(node_ids=["n-1"]) == []
    ids = store.add(nodes)
    assert ids == [n.node_id for n in nodes]
    assert point_id(nodes[1].node_id) == nodes[1].node_id.lower() and point_id("n-1") != "n-1"
    res = store.query(VectorStoreQuery(query_embedding=emb.get_query_embedding("cat"), similarity_top_k=2))
    assert res.ids[0] == nodes[1].node_id and res.nodes[0].get_content() == "cat"
    assert res.similarities[0] == pytest.approx(1.0, abs=1e-5) and res.similarities[0] >= res.similarities[1]
    assert [n.node_id for n in store.get_nodes(node_ids=[nodes[2].node_id, "missing", "n-1"])] == [nodes[2].node_id, "n-1"]
    assert {n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[F("kind", "mammal")]))} == {nodes[1].node_id, nodes[2].node_id}
    only = store.query(VectorStoreQuery(query_embedding=emb.get_query_embedding("cat"), similarity_top_k=5, node_ids=["n-1"]))
    assert only.ids == ["n-1"]
    mmr = store.query(VectorStoreQuery(query_embedding=emb.get_query_embedding("cat dog"), similarity_top_k=2, mode=VectorStoreQueryMode.MMR, mmr_threshold=0.5))
    assert set(mmr.ids) == {nodes[1].node_id, nodes[2].node_id}
    store.delete_nodes(node_ids=["n-1"])
    assert store.get_nodes(node_ids=["n-1"]) == []
    store.clear()
    assert not store.client.has_collection(store.collection_name)


def test_filter_translation_refuses_what_it_cannot_do():
    assert metadata_filters(None) is None and metadata_filters(MetadataFilters(filters=[])) is None
    assert metadata_filters(MetadataFilters(filters=[F("a", 1), F("b", 2, "!=")], condition="or")) == {
        "should": [{"key": "a", "match": {"value": 1}}, {"must_not": [{"key": "b", "match": {"value": 2}}]}]
    }
    for op in ("text_match", "text_match_insensitive"):
        with pytest.raises(sextant.InvalidInput, match=f"operator '{op}'.*not supported"):
            metadata_filters(MetadataFilters(filters=[F("a", "x", op)]))
    with pytest.raises(sextant.InvalidInput, match="takes a list"):
        metadata_filters(MetadataFilters(filters=[F("a", "x", "in")]))
    with pytest.raises(sextant.InvalidInput, match="takes a string or a number"):
        metadata_filters(MetadataFilters(filters=[F("a", ["x"], "==")]))
    with pytest.raises(sextant.InvalidInput, match="mode 'hybrid'"):
        SextantVectorStore("x", db=object()).query(VectorStoreQuery(query_embedding=[1.0], mode=VectorStoreQueryMode.HYBRID))

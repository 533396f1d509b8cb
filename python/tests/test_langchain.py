"""sextant.langchain.SextantVectorStore against LangChain's standard vector-store suite
(``langchain-tests``, unchanged), embedded and served (``conftest.py``'s ``db`` fixture), plus
what the suite does not cover: filters, relevance scores, MMR, from_texts, retrievers, mixed
id kinds."""

from __future__ import annotations

from typing import Iterator

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

import sextant
from sextant.langchain import SextantVectorStore, point_id

# The standard suite's async tests are plain ``async def``s (LangChain runs them with
# asyncio_mode=auto): mark the module for pytest-asyncio; on the sync tests the mark is a no-op.
pytestmark = [
    pytest.mark.asyncio,
    pytest.mark.filterwarnings("ignore:.*marked with .@pytest.mark.asyncio. but it is not an async function"),
]


def _fresh_store(db: sextant.Database, name: str, embedding) -> Iterator[SextantVectorStore]:
    store = SextantVectorStore(embedding, name, db=db)
    try:
        yield store
    finally:
        if db.has_collection(name):
            db.delete_collection(name)


class TestSextantStandard(VectorStoreIntegrationTests):
    """LangChain's standard suite, on each backend."""

    @pytest.fixture()
    def vectorstore(self, db, name) -> Iterator[VectorStore]:  # type: ignore[override]
        """An empty store over a collection no other test uses."""
        yield from _fresh_store(db, name, self.get_embeddings())


@pytest.fixture()
def store(db, name) -> Iterator[SextantVectorStore]:
    yield from _fresh_store(db, name, DeterministicFakeEmbedding(size=6))


def _docs():
    return [
        Document(page_content="falcons stoop on prey", metadata={"kind": "bird", "legs": 2, "year": 2020}),
        Document(page_content="owls hunt at night", metadata={"kind": "bird", "legs": 2, "year": 2022}),
        Document(page_content="cats hunt mice", metadata={"kind": "mammal", "legs": 4, "year": 2024}),
    ]


def test_metadata_filters(store):
    ids = store.add_documents(_docs())
    assert {d.id for d in store.similarity_search("x", k=5, filter={"kind": "bird"})} == set(ids[:2])
    assert [d.id for d in store.similarity_search("x", k=5, filter={"kind": "bird", "year": 2022})] == [ids[1]]
    assert {d.id for d in store.similarity_search("x", k=5, filter={"year": [2020, 2024]})} == {ids[0], ids[2]}
    native = {"must": [{"key": "metadata.legs", "range": {"gt": 2}}]}
    assert [d.page_content for d in store.similarity_search("x", k=5, filter=native)] == ["cats hunt mice"]
    assert store.similarity_search("x", k=5, filter={"kind": "fish"}) == []
    # Metadata lives under "metadata": a metadata key named like a reserved one is just metadata.
    store.add_texts(["odd"], [{"page_content": "not me", "id": 7}], ids=["odd"])
    assert store.get_by_ids(["odd"]) == [Document(id="odd", page_content="odd", metadata={"page_content": "not me", "id": 7})]
    with pytest.raises(ValueError, match="native Sextant filter"):
        store.similarity_search("x", filter={"year": {"$gt": 2020}})
    with pytest.raises(TypeError, match="unknown search option"):
        store.similarity_search("x", fliter={"kind": "bird"})


def test_scores_relevance_and_mmr(store):
    store.add_documents(_docs() + [Document(page_content="falcons stoop on prey", id="dup")])
    top, score = store.similarity_search_with_score("falcons stoop on prey", k=1)[0]
    assert top.page_content == "falcons stoop on prey" and score == pytest.approx(1.0, abs=1e-5)
    rel = store.similarity_search_with_relevance_scores("owls hunt at night", k=4)
    assert rel[0][0].page_content == "owls hunt at night" and rel[0][1] == pytest.approx(1.0, abs=1e-5)
    assert all(0.0 <= s <= 1.0 for _, s in rel)
    assert [s for _, s in rel] == sorted((s for _, s in rel), reverse=True)
    # MMR with full diversity weight does not return the duplicate twice.
    mmr = store.max_marginal_relevance_search("falcons stoop on prey", k=2, fetch_k=4, lambda_mult=0.1)
    assert len(mmr) == 2 and mmr[0].page_content == "falcons stoop on prey"
    assert mmr[1].page_content != "falcons stoop on prey"
    retriever = store.as_retriever(search_type="mmr", search_kwargs={"k": 2, "filter": {"kind": "bird"}})
    assert {d.metadata["kind"] for d in retriever.invoke("falcons")} == {"bird"}
    thresholded = store.as_retriever(search_type="similarity_score_threshold", search_kwargs={"score_threshold": 0.99})
    assert [d.page_content for d in thresholded.invoke("cats hunt mice")] == ["cats hunt mice"]


def test_mixed_id_kinds_and_delete_by_filter(store):
    upper = "3F2504E0-4F89-11D3-9A0C-0305E82C3301"
    ids = store.add_texts(["a", "b", "c", "d"], ids=[upper, "doc-1", "42", None])
    assert ids[:3] == [upper, "doc-1", "42"] and len(ids[3]) == 36
    assert [d.id for d in store.get_by_ids(["42", upper, "missing", "doc-1"])] == ["42", upper, "doc-1"]
    # Points keep UUID ids: the LangChain id itself when it is one.
    assert {str(p.id) for p in store.collection.get([point_id(i) for i in ids])} == {point_id(i) for i in ids}
    assert point_id(ids[3]) == ids[3]
    store.add_texts(["e"], [{"tag": "x"}], ids=["e"])
    store.delete(filter={"tag": "x"})
    assert store.get_by_ids(["e"]) == []
    assert store.delete() is True
    assert store.collection.count() == 0


def test_from_texts_and_path(tmp_path):
    emb = DeterministicFakeEmbedding(size=6)
    store = SextantVectorStore.from_texts(["alpha", "beta"], emb, [{"n": 1}, {"n": 2}], path=str(tmp_path / "d"), collection_name="kb")
    try:
        assert store.similarity_search("beta", k=1) == [Document(id=store.similarity_search("beta", k=1)[0].id, page_content="beta", metadata={"n": 2})]
        assert store.collection.info()["schema"]["spaces"][0]["metric"] == "cosine"
    finally:
        store.close()
    with pytest.raises(ValueError, match="exactly one"):
        SextantVectorStore(emb, "kb")

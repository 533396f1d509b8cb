"""The public API on both backends: every test taking ``db`` runs on the engine in this process
(``sextant.open``) and on a server (``sextant.connect``), and must pass on each unchanged —
the promise that code moves between the two by changing one line. The last tests check that
both give the same answers on the same data, and the HTTP client's own duties (error mapping,
URL quoting, reconnecting, closing)."""

from __future__ import annotations

import json
import pickle
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

import sextant
from sextant import AlreadyExists, Conflict, DocumentHit, Hit, InvalidInput, NotFound, Overloaded, SextantError

from conftest import MODEL

DIM = 8


def _random(n: int, dim: int = DIM, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def _match(key: str, value: Any) -> Dict[str, Any]:
    return {"must": [{"key": key, "match": {"value": value}}]}


# ---- collections and aliases ---------------------------------------------------------------


def test_create_list_delete_collections(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM, metric="dot")
    assert c.name == name
    assert name in db.list_collections()
    assert db.has_collection(name)
    assert db.get_collection(name).info()["points"] == 0
    with pytest.raises(AlreadyExists):
        db.create_collection(name, DIM)
    assert db.create_collection(name, DIM, exist_ok=True).name == name  # exist_ok: no error
    db.delete_collection(name)
    assert name not in db.list_collections()
    assert not db.has_collection(name)
    with pytest.raises(NotFound):
        db.get_collection(name)
    with pytest.raises(NotFound):
        db.delete_collection(name)


def test_ivf_pq_collections(db: sextant.Database, name: str) -> None:
    """An ivf_pq collection through either backend: its settings stored, its segments trained
    once they are big enough, its vectors on disk when asked, every vector its own nearest
    neighbour with exact rescoring, nprobe per search, and settings of another index refused by
    name."""
    c = db.create_collection(name, 16, metric="l2", index="ivf_pq", nlist=8, pq_m=8, nprobe=8, on_disk=True)
    space = c.info()["schema"]["spaces"][0]
    assert space["index"] == {"type": "ivf_pq", "nlist": 8, "m": 8, "nprobe": 8}
    assert space["on_disk"] is True
    vectors = _random(1500, 16, seed=3)
    c.upsert(list(range(1500)), vectors)
    c.optimize()
    parts = c.info()["memory_parts"]
    assert parts["vectors"] == 0 and parts["vectors_on_disk"] >= 1500 * 16 * 4, parts
    for i in (0, 700, 1499):
        hits = c.search(vectors[i], k=3, ef=50)
        assert hits[0].id == i and hits[0].score == pytest.approx(0.0, abs=1e-4)
        hits = c.search(vectors[i], k=3, ef=50, nprobe=1)
        assert hits[0].id == i
    with pytest.raises(InvalidInput, match="nprobe"):
        c.search(vectors[0], k=3, nprobe=0)
    plain = db.create_collection(name + "h", 16)
    plain.upsert([1], vectors[:1])
    with pytest.raises(InvalidInput, match="nprobe"):
        plain.search(vectors[0], k=1, nprobe=4)
    with pytest.raises(InvalidInput, match="nprobe"):
        db.create_collection(name + "x", 16, index="hnsw", nprobe=4)
    with pytest.raises(InvalidInput, match="l1"):
        db.create_collection(name + "y", 16, metric="l1", index="ivf_pq")


def test_ivf_pq_code_width_and_opq(db: sextant.Database, name: str) -> None:
    """8-bit codes and an OPQ rotation through either backend: stored, trained on flush, every
    vector its own nearest neighbour after rescoring, and refused by name when out of range or
    given to another index."""
    c = db.create_collection(name, 16, metric="l2", index="ivf_pq", pq_bits=8, opq=True)
    index = c.info()["schema"]["spaces"][0]["index"]
    assert (index["bits"], index["opq"]) == (8, True), index
    vectors = _random(1500, 16, seed=4)
    c.upsert(list(range(1500)), vectors)
    c.optimize()
    for i in (0, 800, 1499):
        assert c.search(vectors[i], k=3, ef=50)[0].id == i
    with pytest.raises(InvalidInput, match="pq_bits"):
        db.create_collection(name + "b", 16, index="ivf_pq", pq_bits=5)
    with pytest.raises(InvalidInput, match="opq"):
        db.create_collection(name + "o", 16, opq=True)


def test_binary_metrics(db: sextant.Database, name: str) -> None:
    """Hamming and Jaccard through either backend: scores by their definitions, a vector that is
    not binary refused on upsert (nothing written) and on search, and ivf_pq refused by metric."""
    bits = (np.random.default_rng(3).random((300, 16)) < 0.4).astype(np.float32)
    for metric, index in (("hamming", "hnsw"), ("jaccard", "flat")):
        c = db.create_collection(name + metric, 16, metric=metric, index=index)
        c.upsert(list(range(300)), bits)
        hits = c.search(bits[5], k=4, ef=100)
        assert hits[0].id == 5 and hits[0].score == 0.0
        for h in hits:
            a, b = bits[5] == 1.0, bits[int(h.id)] == 1.0
            if metric == "hamming":
                want = float(np.sum(a != b))
            else:
                union = np.sum(a | b)
                want = 0.0 if union == 0 else 1.0 - np.sum(a & b) / union
            assert h.score == pytest.approx(want, abs=1e-6)
        with pytest.raises(InvalidInput, match="binary"):
            c.upsert([999], np.full((1, 16), 0.5, dtype=np.float32))
        assert c.count() == 300
        with pytest.raises(InvalidInput, match="binary"):
            c.search(np.full(16, 0.5, dtype=np.float32), k=1)
    with pytest.raises(InvalidInput, match="hamming"):
        db.create_collection(name + "i", 16, metric="hamming", index="ivf_pq")


def test_hnsw_quantization(db: sextant.Database, name: str) -> None:
    """An hnsw collection's walk quantization through either backend: stored, `none` keeping no
    8-bit codes, `pq4` keeping its neighbours' 4-bit codes beside every node's links, and refused
    by name with another index or an unknown value."""
    vectors = _random(1500, 16, seed=5)
    held = {}
    for q in ("none", "sq8", "pq4"):
        c = db.create_collection(name + q, 16, metric="l2", quantization=q)
        assert c.info()["schema"]["spaces"][0]["index"]["quantization"] == q
        c.upsert(list(range(1500)), vectors)
        c.optimize()
        held[q] = c.info()["memory_parts"]["index"]
        assert c.search(vectors[9], k=1, ef=50)[0].id == 9
    assert held["none"] + 1500 * 16 <= held["sq8"], held
    # 32 links of 16 4-bit codes beside each node.
    assert held["none"] + 1500 * 16 * 16 <= held["pq4"], held
    with pytest.raises(InvalidInput, match="quantization"):
        db.create_collection(name + "f", 16, index="flat", quantization="none")
    with pytest.raises(InvalidInput, match="quantization"):
        db.create_collection(name + "u", 16, quantization="int4")


def test_advise(db: sextant.Database, name: str) -> None:
    """The index advisor through either backend: every layout measured on the sample, the budget
    applied, own queries used, bad fields refused by name."""
    c = db.create_collection(name, 16, metric="l2")
    vectors = _random(1300, 16, seed=11)
    c.upsert(list(range(1300)), vectors)
    r = c.advise(sample=1000, queries=50, memory_budget=20_000_000)
    assert (r["sample"], r["queries"], r["queries_from"]) == (1000, 50, "held-out")
    assert len(r["layouts"]) >= 4
    for layout in r["layouts"]:
        assert layout["fits_budget"] == (layout["ram_bytes"] <= 20_000_000)
    flat = next(l for l in r["layouts"] if l["create_flags"] == "--index flat")
    assert flat["sweep"][0]["recall"] == 1.0
    own = c.advise(sample=1000, query_vectors=vectors[:20] + 0.01)
    assert (own["queries"], own["queries_from"]) == (20, "given")
    with pytest.raises(InvalidInput, match="target_recall"):
        c.advise(target_recall=1.5)
    with pytest.raises(InvalidInput, match="queries"):
        c.advise(query_vectors=np.zeros((2, 3), dtype=np.float32))


def test_aliases_resolve_and_move(db: sextant.Database, name: str) -> None:
    a = db.create_collection(name + "a", DIM)
    b = db.create_collection(name + "b", DIM)
    a.upsert([1], _random(1))
    b.upsert([1, 2], _random(2))
    alias = name + "-live"
    db.set_alias(alias, a.name)
    assert db.aliases()[alias] == a.name
    assert db.has_collection(alias)
    assert db.collection(alias).count() == 1
    db.set_alias(alias, b.name)  # moved atomically
    assert db.aliases()[alias] == b.name
    assert db.collection(alias).count() == 2
    db.delete_alias(alias)
    assert alias not in db.aliases()
    with pytest.raises(NotFound):
        db.collection(alias).count()
    with pytest.raises(NotFound):
        db.delete_alias(alias)
    with pytest.raises(NotFound):
        db.set_alias(alias, name + "missing")


# ---- points ---------------------------------------------------------------------------------


def test_upsert_get_count(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM, metric="dot", payload_indexes={"i": "integer"})
    x = _random(20)
    seq = c.upsert(list(range(20)), x, [{"i": i, "even": i % 2 == 0, "tag": f"p{i}"} for i in range(20)])
    assert isinstance(seq, int)
    assert c.count() == 20 and len(c) == 20
    assert c.count(_match("even", True)) == 10
    assert c.count({"must": [{"key": "i", "range": {"gte": 15}}]}) == 5
    # In the order asked; a missing id is left out; dot keeps vectors as written.
    pts = c.get([7, 999, 3], with_vector=True)
    assert [p.id for p in pts] == [7, 3]
    assert pts[0].payload == {"i": 7, "even": False, "tag": "p7"}
    np.testing.assert_allclose(pts[0].vector, x[7], atol=1e-6)
    np.testing.assert_allclose(pts[1].vector, x[3], atol=1e-6)
    assert c.get([3], with_payload=False)[0].payload is None
    assert c.get([3])[0].vector is None
    # Replacing an id keeps one point.
    c.upsert([3], x[:1], [{"i": 3, "replaced": True}])
    assert c.count() == 20
    assert c.get([3])[0].payload == {"i": 3, "replaced": True}
    # String ids, and `add` with vectors (texts go into payloads).
    s = db.create_collection(name + "s", DIM)
    assert s.add(["a", "b"], texts=["x", "y"], vectors=x[:2], metadatas=[{"k": 1}, None])["upserted"] == 2
    assert {p.id: p.payload for p in s.get(["b", "a"])} == {"a": {"k": 1, "text": "x"}, "b": {"text": "y"}}


def test_cosine_vectors_come_back_normalised(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM, metric="cosine")
    x = _random(5, seed=3)
    c.upsert(list(range(5)), x)
    got = np.stack([p.vector for p in c.get(list(range(5)), with_vector=True)])
    np.testing.assert_allclose(got, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)


def test_scroll_pages_through_every_point(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM)
    n = 23
    ranks = np.random.default_rng(1).permutation(n)
    c.upsert(list(range(n)), _random(n), [{"rank": int(r)} for r in ranks])

    def pages(**kw: Any) -> List[List[int]]:
        out, offset = [], None
        while True:
            pts, offset = c.scroll(limit=5, offset=offset, **kw)
            out.append([p.id for p in pts])
            if offset is None:
                return out
            assert len(out) < 10, "scroll does not end"

    by_id = pages()
    assert [len(p) for p in by_id] == [5, 5, 5, 5, 3]
    assert sorted(i for p in by_id for i in p) == list(range(n))
    by_rank = [i for p in pages(order_by="rank") for i in p]
    assert [int(ranks[i]) for i in by_rank] == list(range(n))
    desc = [i for p in pages(order_by="rank", descending=True) for i in p]
    assert desc == by_rank[::-1]
    assert sorted(p.id for p in c.points(page=4)) == list(range(n))
    half, _ = c.scroll(_match("rank", int(ranks[4])), limit=10)
    assert [p.id for p in half] == [4]


def test_delete_by_ids_and_by_filter(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM)
    c.upsert(list(range(10)), _random(10), [{"group": "a" if i < 4 else "b"} for i in range(10)])
    assert c.delete([0, 1]) == 2
    assert c.delete([0, 1, 12345]) == 0  # missing ids are not an error
    assert c.count() == 8
    assert c.delete(filter=_match("group", "a")) == 2
    assert c.count() == 6
    assert c.get([0, 2, 3, 4])[0].id == 4
    with pytest.raises(InvalidInput) as e:
        c.delete()  # ids or a filter, exactly one
    assert e.value.field == "ids"


def test_vector_search(db: sextant.Database, name: str) -> None:
    n, k = 300, 10
    x = _random(n, seed=11)
    c = db.create_collection(name, DIM, metric="dot", m=8, ef_construction=64)
    c.upsert(list(range(n)), x, [{"even": i % 2 == 0} for i in range(n)])
    c.optimize()  # one segment with an HNSW graph
    q = x[42]
    # Exact search is numpy's brute force.
    scores = x @ q
    truth = np.argsort(-scores, kind="stable")[:k]
    exact = c.search(q, k, exact=True)
    assert [h.id for h in exact] == truth.tolist()
    np.testing.assert_allclose([h.score for h in exact], scores[truth], rtol=1e-5)
    # HNSW with a generous candidate list agrees on this small set; the top hit of a stored
    # point's own vector under dot is the point with the largest score, which exact found.
    approx = c.search(q, k, ef=256)
    assert len(set(h.id for h in approx) & set(truth.tolist())) >= k - 1
    assert approx[0].id == exact[0].id
    assert all(isinstance(h, Hit) for h in approx)
    # Payloads and vectors on request; a filter is honoured.
    top = c.search(q, 3, with_vector=True, with_payload=False)
    assert top[0].payload is None
    np.testing.assert_allclose(top[0].vector, x[top[0].id], atol=1e-6)
    odd = c.search(q, k, filter=_match("even", False), exact=True)
    assert len(odd) == k and all(h.id % 2 == 1 for h in odd)
    odd_truth = [int(i) for i in np.argsort(-scores, kind="stable") if i % 2 == 1][:k]
    assert [h.id for h in odd] == odd_truth
    # A float64 or strided query is the same query; NaN, a wrong k or a missing collection are
    # refused with the package's errors on either backend (and either HTTP transport).
    assert [h.id for h in c.search(x[42].astype(np.float64), k, exact=True)] == truth.tolist()
    assert [h.id for h in c.search(np.repeat(q, 2)[::2], k, exact=True)] == truth.tolist()
    bad = q.copy()
    bad[3] = np.nan
    with pytest.raises(InvalidInput) as e:
        c.search(bad, k)
    assert e.value.field == "vector"
    with pytest.raises(InvalidInput) as e:
        c.search(q, 0)
    assert e.value.field == "k"
    with pytest.raises(NotFound):
        db.collection(name + "-missing").search(q, k)


def test_search_finds_the_query_point_itself(db: sextant.Database, name: str) -> None:
    x = _random(200, seed=5)
    c = db.create_collection(name, DIM)  # cosine: a point is its own nearest neighbour
    c.upsert([f"p{i}" for i in range(200)], x)
    for i in (0, 57, 199):
        hits = c.search(x[i], 3)
        assert hits[0].id == f"p{i}"
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].score >= hits[1].score >= hits[2].score


def test_hits_are_values(db: sextant.Database, name: str) -> None:
    """Search results are immutable values: equal by fields, picklable, not hashable."""
    c = db.create_collection(name, 3, metric="cosine")
    c.upsert([1, 2], np.array([[1, 0, 0], [0, 1, 0]], dtype=np.float32), [{"text": "a"}, {"k": 1}])
    hits = c.search(np.array([1, 0.1, 0], dtype=np.float32), k=2, with_vector=True)
    assert [type(h) for h in hits] == [Hit, Hit] and [h.id for h in hits] == [1, 2]
    assert hits[0].text == "a" and hits[1].text is None and hits[1].payload == {"k": 1}
    assert hits[0].vector.dtype == np.float32 and np.allclose(hits[0].vector, [1, 0, 0])
    assert hits[0].doc_id is None and hits[0].sources is None and hits[0].rerank_score is None
    assert pickle.loads(pickle.dumps(hits)) == hits and hits[0] != hits[1]
    assert repr(hits[1]).startswith("Hit(id=2, score=") and repr(hits[1]).endswith("payload={'k': 1})")
    with pytest.raises(TypeError, match="unhashable"):
        hash(hits[0])
    with pytest.raises(AttributeError):
        hits[0].score = 2.0  # type: ignore[misc]
    # Vectors compare by value, by space when there are several.
    assert Hit(1, 0.5, vector={"a": np.ones(2)}) == Hit(1, 0.5, vector={"a": np.ones(2, dtype=np.float32)})
    assert Hit(1, 0.5, vector={"a": np.ones(2)}) != Hit(1, 0.5, vector={"b": np.ones(2)})
    assert Hit(1, 0.5, vector=np.ones(2)) != Hit(1, 0.5, vector=np.zeros(2))
    assert Hit(1, 0.5, vector=np.ones(2)) != Hit(1, 0.5)
    assert Hit("x", 1.0, doc_id="d", rerank_score=0.25).__eq__("x") is NotImplemented


# ---- tenants ---------------------------------------------------------------------------------


def test_multi_tenant_collection_keeps_tenants_apart(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM, metric="l2", tenant_key="org")
    x = _random(8)
    c.upsert([1, 2, 3], x[:3], [{"i": i} for i in range(3)], tenant="acme")
    c.upsert([4, 5, 6, 7, 8], x[3:], [{"i": i} for i in range(5)], tenant="globex")
    # Search, get, count and scroll see the tenant's own points only.
    assert {h.id for h in c.search(x[4], 10, tenant="acme")} == {1, 2, 3}
    assert {h.id for h in c.search(x[0], 10, tenant="globex")} == {4, 5, 6, 7, 8}
    assert [p.id for p in c.get([1, 4], tenant="acme")] == [1]
    assert c.get([1], tenant="acme")[0].payload == {"i": 0, "org": "acme"}
    assert c.count(tenant="acme") == 3 and c.count(tenant="globex") == 5
    pts, nxt = c.scroll(tenant="acme")
    assert [p.id for p in pts] == [1, 2, 3] and nxt is None
    assert c.count(all_tenants=True) == 8
    # A tenant cannot delete another's points.
    assert c.delete([4, 5], tenant="acme") == 0
    assert c.count(tenant="globex") == 5
    assert c.delete(filter=_match("i", 0), tenant="acme") == 1
    assert c.count(tenant="globex") == 5
    # Without a tenant: refused.
    for call in (lambda: c.count(), lambda: c.search(x[0]), lambda: c.upsert([9], x[:1])):
        with pytest.raises(InvalidInput, match="tenant"):
            call()
    assert c.tenants() == {"acme": 2, "globex": 5}
    assert c.drop_tenant("globex") == 5
    assert c.tenants() == {"acme": 2}
    assert c.count(tenant="globex") == 0


# ---- documents -------------------------------------------------------------------------------

DOCS = {
    "falcon": (
        "The peregrine falcon dives at over three hundred kilometres per hour to strike other birds in flight. "
        "It nests on cliffs and on the ledges of tall city buildings. "
        "Its prey is mostly pigeons, ducks and songbirds caught in the air.",
        {"topic": "birds", "year": 2019},
    ),
    "espresso": (
        "Espresso is brewed by forcing hot water through finely ground coffee beans under high pressure.",
        {"topic": "food", "year": 2021},
    ),
    "glacier": (
        "Glaciers carve deep valleys as the ice slowly moves downhill, grinding the rock beneath it.",
        {"topic": "earth", "year": 2020},
    ),
    "volcano": (
        "Volcanoes erupt when molten magma rises through cracks in the crust of the Earth.",
        {"topic": "earth", "year": 2022},
    ),
}


def _kb(db: sextant.Database, name: str) -> sextant.Collection:
    kb = db.collection(name, model=MODEL, no_splade=True, chunk_tokens=24)
    ids = list(DOCS)
    report = kb.add(ids, [DOCS[i][0] for i in ids], [DOCS[i][1] for i in ids])
    assert report["documents"] == 4 and report["chunks"] > 4  # the falcon text is split
    return kb


@pytest.mark.usefixtures("model_dir")
def test_documents_text_search(db: sextant.Database, name: str) -> None:
    kb = _kb(db, name)
    for mode, query, want in (
        ("dense", "a bird of prey hunting in the sky", "falcon"),
        ("bm25", "espresso coffee beans", "espresso"),
        ("hybrid", "molten magma eruption", "volcano"),
        (None, "ice grinding rock into valleys", "glacier"),
    ):
        hits = kb.search(query, 3, mode=mode)
        assert hits and hits[0].doc_id == want, (mode, query, [h.doc_id for h in hits])
        assert len({h.doc_id for h in hits}) == len(hits)  # one hit per document
        assert hits[0].text and hits[0].payload["topic"] == DOCS[want][1]["topic"]
    # A metadata filter.
    earth = kb.search("a bird of prey hunting in the sky", 4, filter=_match("topic", "earth"))
    assert {h.doc_id for h in earth} <= {"glacier", "volcano"} and earth
    recent = kb.search("coffee", 4, mode="bm25", filter={"must": [{"key": "year", "range": {"gte": 2022}}]})
    assert all(h.doc_id == "volcano" for h in recent)
    # Grouped: documents with up to two chunks each.
    grouped = kb.search("falcon birds nests prey", 2, group_size=2)
    assert all(isinstance(g, DocumentHit) for g in grouped)
    assert grouped[0].doc_id == "falcon" and len(grouped[0].chunks) == 2
    assert all(ch.doc_id == "falcon" for ch in grouped[0].chunks)
    assert all(1 <= len(g.chunks) <= 2 for g in grouped)
    # A rerank blended at w 0 keeps hybrid's order, each reranked hit with the reranker's
    # score; a blend without a reranker, out of range, or on a vector query is refused.
    plain = kb.search("molten magma eruption", 4)
    blended = kb.search("molten magma eruption", 4, rerank="maxsim", rerank_blend=0.0)
    assert [h.doc_id for h in blended] == [h.doc_id for h in plain]
    assert all(h.rerank_score is not None for h in blended)
    for bad in (dict(rerank_blend=0.5), dict(rerank="maxsim", rerank_blend=1.5)):
        with pytest.raises(InvalidInput) as e:
            kb.search("magma", 4, **bad)
        assert e.value.field == "rerank_blend", bad
    with pytest.raises(InvalidInput) as e:
        kb.search([0.0] * 384, 4, rerank_blend=0.5)
    assert e.value.field == "rerank_blend"
    # Deleting a document removes every chunk of it.
    before = kb.count()
    falcon_chunks = kb.count(_match("doc_id", "falcon"))
    assert falcon_chunks >= 2
    assert kb.delete_document("falcon") == falcon_chunks
    assert kb.count() == before - falcon_chunks
    assert kb.delete_document("falcon") == 0  # already gone: nothing deleted
    assert "falcon" not in {h.doc_id for h in kb.search("peregrine falcon birds", 4, mode="bm25")}


@pytest.mark.usefixtures("model_dir")
def test_dedup_link_collapses_copies(db: sextant.Database, name: str) -> None:
    kb = db.collection(name, model=MODEL, no_splade=True, dedup="link")
    falcon = DOCS["falcon"][0]
    report = kb.add(
        ["falcon", "falcon-copy", "espresso"],
        [falcon, falcon.upper().replace(".", "!"), DOCS["espresso"][0]],
    )
    assert report["duplicates"] == 1, report
    hits = kb.search("peregrine falcon", 3, group_size=2)
    top = hits[0]
    assert top.doc_id in ("falcon", "falcon-copy")
    assert top.copies == ["falcon-copy" if top.doc_id == "falcon" else "falcon"]
    assert sum(1 for h in hits if h.doc_id.startswith("falcon")) == 1
    with pytest.raises(InvalidInput) as e:
        db.collection(name + "x", model=MODEL, no_splade=True, dedup="merge").add(["a"], ["some text"])
    assert e.value.field == "dedup.policy"


@pytest.mark.usefixtures("model_dir")
def test_evaluate_configs_scores_configurations_against_qrels(db: sextant.Database, name: str) -> None:
    kb = _kb(db, name)
    queries = {"q1": "espresso coffee beans", "q2": "a bird of prey hunting in the sky"}
    qrels = {"q1": {"espresso": 2}, "q2": {"falcon": 1}}
    r = kb.evaluate_configs(queries, qrels, configs=["dense"], metrics=["ndcg@10", "recall@3"], permutations=50)
    assert [c["name"] for c in r["configs"]] == ["random", "bm25", "dense-exact", "dense"]
    bm25 = r["configs"][1]
    assert bm25["per_query"]["q1"]["ndcg@10"] == 1.0
    assert r["markdown"].startswith(f"# Evaluation of `{name}`")
    assert all(c["reference"] == "dense" for c in r["comparisons"])
    swept = kb.evaluate_configs(queries, qrels, baselines=False, sweep_weights=2, permutations=10)
    assert [c["name"] for c in swept["configs"]] == ["sweep-w0.00", "sweep-w0.50", "sweep-w1.00"]
    with pytest.raises(InvalidInput) as e:
        kb.evaluate_configs(queries, qrels, configs=["nope"])
    assert e.value.field == "config"


def test_drift_pin_canaries_and_checks(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, 4, metric="l2")
    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(300, 4)).astype(np.float32)
    c.upsert(list(range(300)), vecs)
    assert c.drift() is None
    ref = c.pin_drift(shift_alarm=0.3)
    assert ref["spaces"][0]["count"] == 300
    canary = c.add_canary("first", vector=vecs[7], k=3)
    assert len(canary["expected"]) == 3 and canary["expected"][0] == 7
    report = c.check_drift()
    assert report["last_check"]["mean"] == 1.0 and report["alarms"] == []
    assert [x["name"] for x in c.canaries()] == ["first"]
    # Far-away points move the centroid past the threshold.
    c.upsert(list(range(1000, 1300)), vecs + 25.0)
    d = c.drift()
    assert d["spaces"][0]["centroid_shift"] > 0.3 and len(d["alarms"]) == 1
    assert c.info()["drift"]["alarms"] == d["alarms"]
    with pytest.raises(Conflict):
        c.add_canary("first", vector=vecs[1])
    with pytest.raises(InvalidInput) as e:
        c.add_canary("bad", vector=[1.0, 2.0])
    assert e.value.field == "vector"
    c.remove_canary("first")
    with pytest.raises(NotFound):
        c.remove_canary("first")


@pytest.mark.usefixtures("model_dir")
def test_ask_returns_numbered_passages(db: sextant.Database, name: str) -> None:
    kb = _kb(db, name)
    out = kb.ask("How fast does the peregrine falcon dive?", k=4, budget=256)
    assert out["question"] == "How fast does the peregrine falcon dive?"
    assert out["answer"] is None
    passages = out["context"]["passages"]
    assert passages, out
    assert [p["citation"] for p in passages] == list(range(1, len(passages) + 1))
    assert {p["doc_id"] for p in passages} <= set(DOCS)
    assert passages[0]["doc_id"] == "falcon"
    assert out["context"]["tokens"] <= 256
    only_earth = kb.ask("what moves slowly?", filter=_match("topic", "earth"), mode="bm25", answer=False)
    assert {p["doc_id"] for p in only_earth["context"]["passages"]} <= {"glacier", "volcano"}
    with pytest.raises(InvalidInput) as e:
        kb.ask("x", bogus=1)
    assert e.value.field == "bogus"


@pytest.mark.usefixtures("model_dir")
def test_ingest_a_folder(db: sextant.Database, name: str, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "kestrel.md").write_text("# Kestrels\n\nKestrels hover over meadows looking for voles and mice.\n")
    (folder / "heron.md").write_text("# Herons\n\nHerons wade in shallow water and spear fish with their beaks.\n")
    (folder / ".hidden.md").write_text("never read\n")
    (folder / "image.bin").write_bytes(b"\x00\x01")
    seen: List[int] = []
    report = db.collection(name, model=MODEL, no_splade=True).ingest(folder, progress=seen.append)
    assert report["documents"] == 2 and report["chunks"] >= 2
    assert seen and seen[-1] == 2
    kb = db.get_collection(name)
    hits = kb.search("voles", 2, mode="bm25")
    # Embedded ids are `notes/kestrel.md`; a server names an uploaded file by its file name.
    assert hits[0].doc_id.endswith("kestrel.md")
    assert hits[0].payload["title"] == "Kestrels"
    # Ingesting again changes nothing.
    again = kb.ingest(str(folder))
    assert again["documents"] == 0 and again["unchanged"] == 2
    with pytest.raises(NotFound):
        kb.ingest(tmp_path / "missing")


@pytest.mark.usefixtures("model_dir")
def test_embed(db: sextant.Database) -> None:
    e = db.embed(["a falcon dives", "coffee is brewed", "ice moves"])
    assert e.shape == (3, 384) and e.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    one = db.embed("a falcon dives")
    assert one.shape == (384,)
    np.testing.assert_allclose(one, e[0], atol=1e-5)
    small = db.embed(["a falcon dives", "ice moves"], model=MODEL, dimensions=128)
    assert small.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(small, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(small[0], e[0, :128] / np.linalg.norm(e[0, :128]), atol=1e-5)
    assert db.embed([]).shape == (0, 384)


# ---- errors ----------------------------------------------------------------------------------


def test_errors_are_typed_and_name_the_field(db: sextant.Database, name: str) -> None:
    missing = db.collection(name + "missing")
    for call in (lambda: missing.count(), lambda: missing.search([0.0] * DIM), lambda: missing.info(), lambda: missing.get([1])):
        with pytest.raises(NotFound):
            call()
    c = db.create_collection(name, DIM)
    c.upsert([1, 2], _random(2))
    for call, field in (
        (lambda: c.search(_random(1)[0], 0), "k"),
        (lambda: c.search(_random(1)[0], filter={"bogus": []}), "filter"),
        (lambda: c.count({"must": 3}), "filter"),
        (lambda: c.search([1.0, 2.0]), "vector"),
        (lambda: c.search(_random(1)[0], ef=0), "ef"),
        (lambda: c.search(_random(1)[0], mode="bm25"), "mode"),  # a text option on a vector query
        (lambda: c.search(_random(1)[0], group_size=2), "group_size"),
        (lambda: c.search("text", exact=True), "exact"),  # a vector option on a text query
        (lambda: c.upsert([3], np.full((1, DIM), np.nan, dtype=np.float32)), "vectors[0]"),
    ):
        with pytest.raises(InvalidInput) as e:
            call()
        assert e.value.field == field, (field, e.value.field, str(e.value))
        assert isinstance(e.value, (SextantError, ValueError))
    with pytest.raises(InvalidInput):
        c.upsert([3], _random(1, dim=DIM + 1))  # a wrong vector length
    assert c.count() == 2


def test_expired_points_are_never_returned(db: sextant.Database, name: str) -> None:
    c = db.create_collection(name, DIM, ttl="created:1h")
    assert c.info()["schema"]["ttl"] == {"field": "created", "seconds": 3600}
    x = _random(4)
    old = {"created": "2000-01-01T00:00:00Z"}
    c.upsert(
        [1, 2, 3, 4],
        x,
        [None, None, old, old],
        expires_at=["2000-01-01T00:00:00Z", None, None, "2999-01-01T00:00:00Z"],
    )
    c.upsert([5], x[:1], ttl=[3600])
    # 1: own expiry past; 3: the default (created + 1 h) past; 4: own expiry wins.
    assert c.count() == 3
    assert sorted(p.id for p in c.get([1, 2, 3, 4, 5])) == [2, 4, 5]
    assert sorted(h.id for h in c.search(x[0], 10)) == [2, 4, 5]
    for bad in (dict(expires_at=["soon"]), dict(ttl=[-1]), dict(ttl=[1], expires_at=["2999-01-01T00:00:00Z"]), dict(ttl=[1, 2])):
        with pytest.raises(InvalidInput):
            c.upsert([9], x[:1], **bad)
    with pytest.raises(InvalidInput):
        db.create_collection(name + "bad", DIM, ttl="created:soon")
    # Deleting by age is for document collections.
    with pytest.raises(InvalidInput):
        c.delete_older_than("1d")


@pytest.mark.usefixtures("model_dir")
def test_delete_documents_older_than(db: sextant.Database, name: str) -> None:
    kb = _kb(db, name)
    r = kb.delete_older_than("30d")
    assert (r["deleted_documents"], r["deleted_chunks"]) == (0, 0)
    assert r["cutoff"].endswith("Z")
    with pytest.raises(InvalidInput) as e:
        kb.delete_older_than("a month")
    assert e.value.field == "older_than"


# ---- the two backends agree ------------------------------------------------------------------


def test_both_backends_give_the_same_answers(embedded_db: sextant.Database, served_db: sextant.Database, name: str) -> None:
    x = _random(120, seed=99)
    payloads = [{"i": i, "bucket": i % 3} for i in range(120)]
    answers, scores = [], []
    for db in (embedded_db, served_db):
        c = db.create_collection(name, DIM, metric="dot", payload_indexes={"bucket": "integer"})
        c.upsert(list(range(120)), x, payloads)
        q = x[5] + x[17]
        exact = c.search(q, 10, exact=True)
        scores.append([h.score for h in exact])
        answers.append(
            (
                [h.id for h in exact],
                [h.id for h in c.search(q, 10, filter=_match("bucket", 1))],
                c.count(_match("bucket", 2)),
                [p.id for p in c.scroll(limit=7, order_by="i", descending=True)[0]],
                [(p.id, p.payload) for p in c.get([3, 1000, 77])],
            )
        )
    assert answers[0] == answers[1]
    # A server sends an f32 score as its shortest decimal; the engine hands over the f32 itself.
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)


@pytest.mark.usefixtures("model_dir")
def test_both_backends_rank_documents_alike(embedded_db: sextant.Database, served_db: sextant.Database, name: str) -> None:
    ranked, scores = [], []
    for db in (embedded_db, served_db):
        kb = _kb(db, name)
        hits = [kb.search(q, 4, mode=mode) for q, mode in (("birds that hunt", "dense"), ("the earth crust", "bm25"), ("hot coffee", "hybrid"))]
        ranked.append([[(h.doc_id, h.id) for h in hs] for hs in hits])
        scores.append([h.score for hs in hits for h in hs])
    assert ranked[0] == ranked[1]
    np.testing.assert_allclose(scores[0], scores[1], atol=1e-4)


# ---- the HTTP client itself ------------------------------------------------------------------


class _Fake(BaseHTTPRequestHandler):
    """Canned answers by path; records what it was sent."""

    seen: List[Dict[str, Any]] = []

    def log_message(self, *a: Any) -> None:
        pass

    def _answer(self) -> None:
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        _Fake.seen.append({"method": self.command, "path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        routes = {
            "/api/collections": (200, "text/html", b"<html>hello</html>", {}),
            "/api/aliases": (503, "application/json", b'{"error": {"code": "overloaded", "message": "busy"}}', {"Retry-After": "2"}),
            "/api/collections/c/points/count": (502, "text/plain", b"bad gateway", {}),
            "/api/collections/moved/points/count": (302, "text/plain", b"", {"Location": "http://elsewhere.invalid/"}),
        }
        status, ctype, out, headers = routes.get(
            self.path, (404, "application/json", b'{"error": {"code": "not_found", "message": "nothing here", "field": "name"}}', {})
        )
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(out)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_DELETE = _answer


def test_http_errors_headers_and_quoting(monkeypatch: pytest.MonkeyPatch) -> None:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("SEXTANT_API_KEY", "sxk_test")
        db = sextant.connect(f"http://127.0.0.1:{srv.server_address[1]}/api")
        with pytest.raises(sextant.SextantError, match="not JSON"):
            db.list_collections()
        with pytest.raises(Overloaded) as busy:
            db.aliases()
        assert busy.value.retry_after == 2.0 and str(busy.value) == "busy"
        with pytest.raises(sextant.InternalError, match="502"):
            db.collection("c").count()
        # A redirect is an answer, not followed (the key never goes to another host).
        seen = len(_Fake.seen)
        with pytest.raises(SextantError, match="302"):
            db.collection("moved").count()
        assert len(_Fake.seen) == seen + 1
        with pytest.raises(NotFound) as nf:
            db.delete_alias("a b/c?d")
        assert nf.value.field == "name"
        assert _Fake.seen[-1]["path"] == "/api/aliases/a%20b%2Fc%3Fd"
        assert not db.has_collection("x/y")
        assert _Fake.seen[-1]["path"] == "/api/collections/x%2Fy"
        assert {s["auth"] for s in _Fake.seen} == {"Bearer sxk_test"}
        db.close()
        with pytest.raises(InvalidInput):
            db.list_collections()
    finally:
        srv.shutdown()
        srv.server_close()


def test_http_unreachable_server_raises_a_sextant_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there
    db = sextant.connect(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(SextantError) as e:
        db.list_collections()
    assert isinstance(e.value, ConnectionError) and "cannot reach" in str(e.value)
    with pytest.raises(InvalidInput):
        sextant.connect("ftp://example.org")


def test_http_reconnects_after_a_dropped_connection(server_url: str, name: str) -> None:
    db = sextant.connect(server_url)
    db.create_collection(name, DIM)
    conn = db._backend._local.conn
    conn.sock.shutdown(socket.SHUT_RDWR)  # as when a server closes an idle keep-alive connection
    # A write goes through http.client: it reconnects once.
    c = db.collection(name)
    c.upsert([1], _random(1))
    assert db._backend._local.conn is not conn
    # Threads have http.client connections of their own; their reads share the native pool.
    errors: List[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                c.upsert([100 + 10 * i + j], _random(1))
                assert c.count() >= 1
                assert [h.id for h in c.search(_random(1)[0], 50)].count(1) == 1
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert c.count() == 21
    assert len(db._backend._open) == 5
    db.close()
    assert not db._backend._open
    with pytest.raises(InvalidInput):
        c.search(_random(1)[0], 3)


def _serve_raw(listener: socket.socket, answer: Callable[[bytes], Any]) -> None:
    """Accepts connections on ``listener`` until it is closed: reads one request head from
    each, answers 200 with ``answer(request line)`` as JSON (``None``: no answer at all), and
    closes the connection without a ``Connection: close`` header (as a server closes an idle
    keep-alive connection)."""

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                if not data:
                    continue
                out = answer(data.split(b"\r\n", 1)[0])
                if out is None:
                    conn.shutdown(socket.SHUT_RDWR)
                    continue
                body = json.dumps(out).encode()
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                conn.shutdown(socket.SHUT_RDWR)

    threading.Thread(target=serve, daemon=True).start()


def test_http_native_reads_are_sent_again_after_a_dropped_connection() -> None:
    """A server that closes each keep-alive connection after one answer, without saying so (as
    one does to an idle connection): the native transport's next read on the pooled connection
    fails, and the backend sends it once more on a new one."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    seen: List[bytes] = []

    def answer(line: bytes) -> Dict[str, Any]:
        seen.append(line)
        return {"count": len(seen)}

    _serve_raw(listener, answer)
    try:
        c = sextant.connect(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5).collection("c")
        assert c.count() == 1
        assert c.count() == 2  # the pooled connection was dead: sent again on a new one
        assert seen == [b"POST /collections/c/points/count HTTP/1.1"] * 2
    finally:
        listener.close()
    # A fresh connection dropped without an answer (the server went away mid-request): the
    # backend's own retry sends the read once more; a second drop is a TransportError.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    seen.clear()
    drops = [1]

    def flaky(line: bytes) -> Optional[Dict[str, Any]]:
        seen.append(line)
        if drops[0] > 0:
            drops[0] -= 1
            return None
        return {"count": 7}

    _serve_raw(listener, flaky)
    try:
        c = sextant.connect(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5).collection("c")
        assert c.count() == 7
        assert len(seen) == 2
        drops[0] = 2
        with pytest.raises(SextantError, match="closed the connection") as e:
            sextant.connect(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=5).collection("c").count()
        assert isinstance(e.value, ConnectionError)
    finally:
        listener.close()


def test_http_reads_reach_an_ipv6_host() -> None:
    """``http://[::1]:PORT``: the native transport gets the address with its brackets."""
    listener = socket.socket(socket.AF_INET6)
    try:
        listener.bind(("::1", 0))
    except OSError:
        listener.close()
        pytest.skip("no IPv6 loopback here")
    listener.listen(4)
    _serve_raw(listener, lambda line: {"collections": ["six"]})
    try:
        assert sextant.connect(f"http://[::1]:{listener.getsockname()[1]}", timeout=5).list_collections() == ["six"]
    finally:
        listener.close()


def test_http_document_ids_and_tenants_are_quoted(served_db: sextant.Database, name: str) -> None:
    c = served_db.create_collection(name, DIM, tenant_key="org")
    c.upsert([1], _random(1), tenant="a b/c")
    assert c.tenants() == {"a b/c": 1}
    assert c.drop_tenant("a b/c") == 1
    with pytest.raises(NotFound):
        served_db.collection(name + "missing").delete_document("x/y z")


def test_json_shapes_pass_through(served_db: sextant.Database, name: str) -> None:
    c = served_db.create_collection(name, DIM)
    c.upsert([np.int64(1)], _random(1), [{"n": np.int32(3), "f": np.float32(0.5), "nested": {"l": [1, "x"]}}])
    assert json.dumps(c.get([1])[0].payload, sort_keys=True) == '{"f": 0.5, "n": 3, "nested": {"l": [1, "x"]}}'


@pytest.mark.usefixtures("model_dir")
def test_languages_query_language_and_rm3(db: sextant.Database, name: str) -> None:
    kb = db.collection(name, model=MODEL, no_splade=True, language="fr")
    kb.add(
        ["fr", "de"],
        [
            "Les enfants jouaient dans les jardins publics de la ville pendant que leurs parents travaillaient dans les usines du quartier.",
            "Die Kinder spielten in den öffentlichen Gärten der Stadt, während ihre Eltern in den Fabriken des Viertels arbeiteten.",
        ],
    )
    hits = kb.search("travailler", 5, mode="bm25")
    assert [h.doc_id for h in hits] == ["fr"]
    assert hits[0].payload["language"] == "fr" and hits[0].payload["doc_language"] == "fr"
    de = kb.search("Kinder", 5, mode="bm25", filter=_match("language", "de"))
    assert [h.doc_id for h in de] == ["de"]
    # A given query language and RM3 reach the BM25 source; refusals name the option.
    assert [h.doc_id for h in kb.search("travailler", 5, mode="bm25", query_language="english")] == []
    assert kb.search("enfants jardins", 5, mode="bm25", expand="rm3", rm3_docs=1)[0].doc_id == "fr"
    with pytest.raises(InvalidInput) as e:
        kb.search("enfants", 5, mode="dense", expand="rm3")
    assert e.value.field == "expand"
    with pytest.raises(InvalidInput) as e:
        kb.search([0.0] * 8, 5, query_language="fr")
    assert e.value.field == "query_language"
    with pytest.raises(InvalidInput) as e:
        db.collection(name + "x", model=MODEL, no_splade=True, language="klingon").add(["a"], ["x"])
    assert e.value.field == "language"


def test_pictures_searched_by_image_and_by_text(db: sextant.Database, name: str, tmp_path: Path) -> None:
    from conftest import PICTURES

    pics = tmp_path / "pics"
    pics.mkdir()
    names = ["rocket_640x427_444.jpg", "chelsea_300x200_q90.jpg", "grass_256_lossless.webp"]
    for n in names:
        (pics / n).write_bytes((PICTURES / n).read_bytes())
    # The HTTP client walks directories for what the engine reads, pictures included.
    from sextant import _http

    assert {"docx", "epub", "csv", "eml", "png", "jpg", "webp"} <= _http.EXTENSIONS
    kb = db.collection(name, model="tiny_clip", no_splade=True)
    report = kb.ingest(pics)
    assert report["documents"] == 3
    for n in names:
        # A path and the bytes find the same picture first.
        by_path = kb.search(PICTURES / n, 3)
        by_bytes = kb.search((PICTURES / n).read_bytes(), 3)
        assert by_path[0].payload["source"].endswith(n)
        assert by_path[0].payload["media"] == "image"
        assert [h.id for h in by_path] == [h.id for h in by_bytes]
        assert abs(by_path[0].score - 1.0) < 1e-4
    assert len(kb.search("a rocket", 3, mode="dense")) == 3
    with pytest.raises(InvalidInput) as e:
        kb.search(PICTURES / names[0], 3, mode="bm25")
    assert e.value.field == "mode"
    with pytest.raises(InvalidInput) as e:
        kb.search(PICTURES / names[0], 3, ef=10)
    assert e.value.field == "ef"

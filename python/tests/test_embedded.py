"""What only the embedded backend has: the GIL released during engine work, the directory
lock and close(), numpy conversions at the boundary, and the native evaluator."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import sextant

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "all-MiniLM-L6-v2"


def _progress_while(call) -> int:
    """How many times this thread ran Python code while ``call`` ran on another thread."""
    done = threading.Event()
    err = []

    def run():
        try:
            call()
        except BaseException as e:  # surfaced below
            err.append(e)
        finally:
            done.set()

    t = threading.Thread(target=run)
    ticks = 0
    t.start()
    while not done.is_set():
        ticks += 1
        done.wait(0.001)
    t.join()
    if err:
        raise err[0]
    return ticks


def test_gil_is_released_during_search_ingest_and_embedding(tmp_path):
    db = sextant.open(tmp_path / "d", models={"minilm": str(MODEL)}, threads=1)
    c = db.create_collection("v", dim=64, metric="l2", index="flat")
    rng = np.random.default_rng(0)
    data = rng.standard_normal((20_000, 64)).astype(np.float32)
    # Writes: a large batch.
    assert _progress_while(lambda: c.upsert(list(range(len(data))), data)) > 5
    # Searches: exact over 20k points, many times.
    q = data[:50]
    assert _progress_while(lambda: [c.search(v, k=10, exact=True) for v in q]) > 5
    # Embedding and document ingest (a real model).
    texts = [f"sentence number {i} about falcons and owls hunting at dusk" for i in range(200)]
    assert _progress_while(lambda: db.embed(texts, model="minilm")) > 5
    kb = db.collection("kb", model="minilm", no_splade=True)
    assert _progress_while(lambda: kb.add(ids=[str(i) for i in range(100)], texts=texts[:100])) > 5
    db.close()


def test_threads_share_one_database(tmp_path):
    db = sextant.open(tmp_path / "d")
    c = db.create_collection("v", dim=8, metric="dot", index="flat")
    rng = np.random.default_rng(1)
    data = rng.standard_normal((400, 8)).astype(np.float32)

    def write(lo):
        c.upsert(list(range(lo, lo + 100)), data[lo : lo + 100])

    ts = [threading.Thread(target=write, args=(lo,)) for lo in range(0, 400, 100)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert c.count() == 400
    got = c.get(list(range(400)), with_vector=True)
    assert np.allclose(np.stack([p.vector for p in got]), data)


def test_directory_lock_close_and_reopen(tmp_path):
    db = sextant.open(tmp_path / "d")
    c = db.create_collection("v", dim=2, metric="l2")
    c.upsert([1], np.array([[1.0, 2.0]]))
    with pytest.raises(sextant.Conflict, match="in use"):
        sextant.open(tmp_path / "d")
    db.close()
    db.close()  # twice is fine
    with pytest.raises(sextant.InvalidInput, match="closed"):
        db.list_collections()
    with sextant.open(tmp_path / "d") as again:
        p = again.get_collection("v").get([1], with_vector=True)[0]
        assert p.vector.tolist() == [1.0, 2.0]


def test_numpy_boundary(tmp_path):
    db = sextant.open(tmp_path / "d")
    c = db.create_collection("v", dim=3, metric="l2", index="flat")
    # float64, lists and non-contiguous arrays are converted; a wrong shape or NaN is refused.
    c.upsert([1, 2], [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    c.upsert([3], np.asfortranarray(np.array([[1.0, 0.0, 0.0]], dtype=np.float64)))
    strided = np.array([[5.0, 9.0, 0.0, 9.0, 0.0]])[:, ::2]
    c.upsert([4], strided)
    assert c.get([4], with_vector=True)[0].vector.tolist() == [5.0, 0.0, 0.0]
    assert c.search(np.array([1.0, 0.0, 0.0]), k=1)[0].id == 3
    with pytest.raises(sextant.InvalidInput) as e:
        c.upsert([5, 6], np.zeros((1, 3)))
    assert e.value.field == "vectors"
    with pytest.raises(sextant.InvalidInput, match="NaN"):
        c.upsert([5], np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(sextant.InvalidInput):
        c.search(np.zeros((2, 3)), k=1)
    with pytest.raises(sextant.InvalidInput) as e:
        c.search(np.ones(4), k=1)
    assert "dim" in str(e.value) or e.value.field is not None
    assert c.count() == 4


def test_native_evaluator_matches_a_hand_computation():
    run = {"q1": {"a": 3.0, "b": 2.0, "c": 1.0}, "q2": {"y": 1.0}}
    qrels = {"q1": {"a": 1, "c": 1}, "q2": {"x": 1}}
    m = sextant.evaluate(run, qrels)
    q1 = 1.5 / (1.0 + 1.0 / np.log2(3))
    assert m["queries"] == 2
    assert m["ndcg_at_10"] == pytest.approx(q1 / 2)
    assert m["mrr_at_10"] == pytest.approx(0.5)
    assert m["recall_at_100"] == pytest.approx(0.5)


def test_ask_needs_an_llm_for_an_answer_embedded(tmp_path):
    db = sextant.open(tmp_path / "d", models={"minilm": str(MODEL)})
    kb = db.collection("kb", model="minilm", no_splade=True)
    kb.add(ids=["f"], texts=["Falcons dive at their prey at great speed."])
    ctx = kb.ask("How do falcons hunt?")
    assert ctx["answer"] is None
    assert [p["doc_id"] for p in ctx["context"]["passages"]] == ["f"]
    with pytest.raises(sextant.InvalidInput) as e:
        kb.ask("How do falcons hunt?", answer=True)
    assert e.value.field == "answer"
    with pytest.raises(sextant.InvalidInput) as e:
        kb.ask("How do falcons hunt?", colour="red")
    assert e.value.field == "colour"


def test_unknown_collection_option_is_refused(tmp_path):
    db = sextant.open(tmp_path / "d")
    with pytest.raises(sextant.InvalidInput) as e:
        db.collection("kb", chunk_size=100)
    assert e.value.field == "chunk_size"


def test_readme_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's Python quick start, executed verbatim from a fresh directory that has the
    models where the README says (the repository root's ``models/``)."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "models").symlink_to(REPO / "models")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})
    assert capsys.readouterr().out.strip() == "falcon"


def test_encrypted_collection_needs_its_master_key(tmp_path):
    key = tmp_path / "master.key"
    key.write_text("ab" * 32 + "\n")
    other = tmp_path / "other.key"
    other.write_text("cd" * 32 + "\n")
    data = tmp_path / "d"
    with sextant.open(data, master_key_file=str(key)) as db:
        c = db.create_collection("v", dim=2, metric="l2", encrypted=True)
        c.upsert([1], np.array([[1.0, 2.0]]), payloads=[{"s": "PY-PLANTED-SECRET"}])
        with pytest.raises(sextant.Forbidden, match="master key"):
            sextant.open(tmp_path / "e").create_collection("w", dim=2, encrypted=True)
    for f in data.rglob("*"):
        if f.is_file():
            assert b"PY-PLANTED-SECRET" not in f.read_bytes(), f
    with sextant.open(data) as db:
        with pytest.raises(sextant.Forbidden, match="encrypted"):
            db.get_collection("v").count()
    with sextant.open(data, master_key_file=str(other)) as db:
        with pytest.raises(sextant.Forbidden, match="wrapped by master key"):
            db.get_collection("v").count()
    with sextant.open(data, master_key_file=str(key)) as db:
        assert db.get_collection("v").get([1])[0].payload == {"s": "PY-PLANTED-SECRET"}
    with pytest.raises(sextant.InvalidInput, match="inside the data directory"):
        (data / "k").write_text("ab" * 32)
        sextant.open(data, master_key_file=str(data / "k"))


FIXTURES = REPO / "crates" / "sextant-embed" / "tests" / "fixtures"


def test_reindex_then_compare_then_switch(tmp_path: Path) -> None:
    """The model-upgrade workflow from Python, on the tiny fixture models (8-d → 32-d)."""
    with sextant.open(str(tmp_path / "data")) as db:
        kb = db.collection("kb", model=str(FIXTURES / "tiny-st"), no_splade=True)
        texts = ["The falcon hunts birds.", "A trout swims upstream.", "The violin plays at dusk."]
        kb.add(["d1", "d2", "d3"], texts)
        report = db.reindex("kb", model=str(FIXTURES / "tiny-cross-encoder"), into="kb_v2")
        assert report["stats"]["embedded"] == 3
        assert report["plan"]["estimate"]["new_dim"] == 32
        again = db.reindex("kb", model=str(FIXTURES / "tiny-cross-encoder"), into="kb_v2", resume=True)
        assert again["stats"]["embedded"] == 0
        with pytest.raises(sextant.AlreadyExists):
            db.reindex("kb", model=str(FIXTURES / "tiny-cross-encoder"), into="kb_v2")
        r = kb.evaluate_configs(
            {"q1": "falcon", "q2": "trout"},
            {"q1": {"d1": 1}, "q2": {"d2": 1}},
            configs=["bm25", "dense"],
            baselines=False,
            compare="kb_v2",
            permutations=20,
        )
        names = [c["name"] for c in r["configs"]]
        assert names == ["bm25", "dense", "bm25@kb_v2", "dense@kb_v2"]
        assert r["configs"][0]["means"] == r["configs"][2]["means"]
        db.set_alias("live", "kb_v2")
        assert db.get_collection("live").info()["schema"]["spaces"][0]["dim"] == 32

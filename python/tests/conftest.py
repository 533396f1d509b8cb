"""Fixtures: one database per backend, so every test of ``test_api.py`` runs on both.

- ``embedded``: ``sextant.open`` on a temporary data directory, the model named as a server
  names it (``all-MiniLM-L6-v2``), so the same calls work on both;
- ``served``: the server binary (``$SEXTANT_BIN``, default ``target/debug/sextant``) on a free
  loopback port with ``--no-auth`` and a temporary data directory, run from the repository root
  so that it serves ``models/all-MiniLM-L6-v2`` as its default model; the test talks to it with
  ``sextant.connect``.

Both live for the whole session (a model loads once per process); tests stay independent by
using collection names of their own (the ``name`` fixture).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest

import sextant

REPO = Path(__file__).resolve().parents[2]
MODEL = "all-MiniLM-L6-v2"
MODEL_DIR = REPO / "models" / MODEL
#: The random-weight CLIP fixture of sextant-embed and its pictures.
TINY_CLIP = REPO / "crates" / "sextant-embed" / "tests" / "fixtures" / "tiny-clip"
PICTURES = REPO / "crates" / "sextant-embed" / "tests" / "fixtures" / "images"
#: Seconds a server gets to answer /readyz.
READY_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_bin() -> Path:
    b = Path(os.environ.get("SEXTANT_BIN", "target/debug/sextant"))
    return b if b.is_absolute() else REPO / b


@pytest.fixture(scope="session")
def model_dir() -> Path:
    if not MODEL_DIR.is_dir():
        pytest.skip(f"no model at {MODEL_DIR} (scripts/setup-models.sh)")
    return MODEL_DIR


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running ``sextant serve``; its URL."""
    binary = _server_bin()
    if not binary.exists():
        pytest.skip(f"no server binary at {binary} (cargo build -p sextant-cli, or set SEXTANT_BIN)")
    data = tmp_path_factory.mktemp("served") / "data"
    log_path = data.parent / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEXTANT_SERVER_")}
    env["SEXTANT_SERVER_LOG__LEVEL"] = "warn"
    env["SEXTANT_SERVER_MODELS__TINY_CLIP"] = str(TINY_CLIP)
    for _ in range(3):  # a free port may be taken between the probe and the bind
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [str(binary), "--data", str(data), "serve", "--listen", f"127.0.0.1:{port}", "--no-auth"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                    if r.status == 200:
                        ready = True
                        break
            except OSError:
                time.sleep(0.05)
        if ready:
            break
        proc.kill()
        proc.wait()
    else:
        pytest.fail(f"the server did not become ready; its log:\n{log_path.read_text(errors='replace')[-4000:]}")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def served_db(server_url: str) -> Iterator[sextant.Database]:
    db = sextant.connect(server_url, timeout=120)
    yield db
    db.close()


@pytest.fixture(scope="session")
def embedded_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sextant.Database]:
    models = {MODEL: str(MODEL_DIR)} if MODEL_DIR.is_dir() else {}
    models["tiny_clip"] = str(TINY_CLIP)
    db = sextant.open(str(tmp_path_factory.mktemp("embedded") / "data"), models=models)
    yield db
    db.close()


@pytest.fixture(params=["embedded", "served"])
def db(request: pytest.FixtureRequest) -> sextant.Database:
    """The database of each backend in turn."""
    return request.getfixturevalue(f"{request.param}_db")


@pytest.fixture
def name() -> str:
    """A collection name no other test uses."""
    return "t" + uuid.uuid4().hex[:12]

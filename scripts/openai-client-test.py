#!/usr/bin/env python3
"""Drives `sextant serve`'s OpenAI-compatible routes with the official `openai` client, unchanged.

Starts the server (auth on) over a temporary data directory, makes a read key with
`sextant keys create`, then checks /v1/models and /v1/embeddings (float and base64 encodings,
Matryoshka `dimensions`, several inputs) against the server's own /embed, and that a bad key and an
unknown model raise the client's own exceptions. Exits non-zero on any failure.

Usage: python scripts/openai-client-test.py PATH/TO/sextant   (from the repository root, after
scripts/setup-models.sh: the server serves models/all-MiniLM-L6-v2 as all-MiniLM-L6-v2)
"""

import json
import math
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import openai

MODEL = "all-MiniLM-L6-v2"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def main():
    binary = sys.argv[1]
    with tempfile.TemporaryDirectory() as data:
        key = subprocess.run(
            [binary, "--data", data, "keys", "create", "--role", "read"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        port = free_port()
        server = subprocess.Popen(
            [binary, "--data", data, "serve", "--listen", f"127.0.0.1:{port}"],
            stderr=subprocess.PIPE, text=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1)
                    break
                except OSError:
                    time.sleep(0.05)
            run(base, key)
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
            if server.returncode not in (0, -15, None):
                print(server.stderr.read(), file=sys.stderr)
    print("openai client test: ok")


def own_embed(base, key, texts):
    req = urllib.request.Request(
        base + "/embed",
        data=json.dumps({"texts": texts, "model": MODEL}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"},
    )
    return json.load(urllib.request.urlopen(req))["embeddings"]


def close(a, b, tol=1e-5):
    return len(a) == len(b) and all(abs(x - y) <= tol for x, y in zip(a, b))


def run(base, key):
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0)
    models = [m.id for m in client.models.list()]
    check(MODEL in models, f"/v1/models: {models}")

    texts = ["The cat sat on the mat.", "Rust is a systems programming language."]
    ref = own_embed(base, key, texts)
    # The client's default: it asks for base64 and decodes it itself.
    r = client.embeddings.create(model=MODEL, input=texts)
    check(len(r.data) == 2 and [d.index for d in r.data] == [0, 1], f"indices {r}")
    for d, want in zip(r.data, ref):
        check(len(d.embedding) == 384, f"dim {len(d.embedding)}")
        check(close(d.embedding, want), "base64 embedding differs from /embed")
    check(r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens, f"usage {r.usage}")
    check(r.model == MODEL, r.model)

    f = client.embeddings.create(model=MODEL, input=texts[0], encoding_format="float")
    check(close(f.data[0].embedding, ref[0]), "float embedding differs from /embed")

    short = client.embeddings.create(model=MODEL, input=texts, dimensions=128)
    for d in short.data:
        check(len(d.embedding) == 128, f"dimensions=128 gave {len(d.embedding)}")
        norm = math.sqrt(sum(x * x for x in d.embedding))
        check(abs(norm - 1.0) < 1e-3, f"Matryoshka vector not re-normalised: {norm}")
    # Truncation keeps the direction of the leading components.
    lead = ref[0][:128]
    n = math.sqrt(sum(x * x for x in lead))
    check(close(short.data[0].embedding, [x / n for x in lead], 1e-4), "Matryoshka truncation")

    try:
        openai.OpenAI(base_url=base + "/v1", api_key="sxk_bad_key", max_retries=0).embeddings.create(
            model=MODEL, input="x")
        check(False, "a bad key was accepted")
    except openai.AuthenticationError:
        pass
    try:
        client.embeddings.create(model="no-such-model", input="x")
        check(False, "an unknown model was accepted")
    except openai.NotFoundError:
        pass
    try:
        client.embeddings.create(model=MODEL, input=[])
        check(False, "an empty input was accepted")
    except openai.BadRequestError:
        pass


if __name__ == "__main__":
    main()

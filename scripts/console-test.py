#!/usr/bin/env python3
"""The web console in a real headless browser (Debian's Chromium driven by Playwright).

Usage: scripts/console-test.py PATH/TO/sextant [--skip-text] [--chromium PATH] [--model DIR]

Runs `sextant serve` on a temporary data directory and a free loopback port, twice:
  1. --no-auth: vector collection made through the REST API; the page lists it, shows its info,
     browses points with a payload filter and pages on, runs a vector query (ranked ids), shows a
     malicious payload string as text (no element made, no dialog), shows a JSON error message.
     Unless --skip-text: a document collection made by `sextant ingest` (before the server starts:
     the CLI holds the data-directory lock); text queries in bm25 and hybrid modes show <mark>
     highlights in the top chunk and a citation line; ask shows numbered cited passages.
  2. auth on: the page shows the 401 message until a key made by `sextant keys create` is typed
     into the key box; then the collection list and a vector query work.
On failure: a screenshot and the page HTML under a temporary directory (path printed); exit 1.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request

from playwright.sync_api import sync_playwright, expect

XSS = '<img src=x onerror=alert(1)>'
DOCS = {
    "lighthouses.txt": "Lighthouses\n\nA lighthouse guides ships at night with a rotating lamp. "
    "The keeper trimmed the lamp wick every evening and logged passing ships.\n",
    "bread.txt": "Baking bread\n\nSourdough bread rises slowly because wild yeast ferments the "
    "dough. Bakers fold the dough and bake the loaf in a hot oven.\n",
    "tides.txt": "Tides\n\nThe moon pulls the oceans and makes the tides. Sailors read tide "
    "tables before taking ships into a shallow harbour.\n",
    "markup.txt": f"Markup\n\nA note about a lamp that quotes markup: {XSS} stays text.\n",
}


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`sextant serve` on a free port; stopped (and its log shown on failure) by stop()."""

    def __init__(self, binary, data, auth):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(os.path.join(data, "..", f"serve-{self.port}.log"), "w+")
        cmd = [binary, "--data", data, "serve", "--listen", f"127.0.0.1:{self.port}"]
        if not auth:
            cmd.append("--no-auth")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise Failure(f"sextant serve exited {self.proc.returncode}:\n{self.tail()}")
            try:
                urllib.request.urlopen(self.base + "/readyz", timeout=1).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        raise Failure(f"sextant serve did not become ready:\n{self.tail()}")

    def tail(self):
        self.log.flush()
        self.log.seek(0)
        return "".join(self.log.readlines()[-30:])

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()

    def api(self, method, path, body=None, key=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            raise Failure(f"{method} {path}: {e.code} {e.read().decode()}") from None


def make_vectors(server, key=None):
    """Collection `vecs` (4-d cosine): ids 1..12 along different axes, payload color/i, and one
    point whose payload carries markup that must stay text."""
    server.api("POST", "/collections", {"name": "vecs", "dim": 4, "metric": "cosine",
                                        "payload_indexes": {"color": "keyword", "i": "integer"}},
               key)
    points = []
    for i in range(1, 13):
        v = [0.0, 0.0, 0.0, 0.0]
        v[i % 4] = 1.0
        v[(i + 1) % 4] = i / 100.0
        points.append({"id": i, "vector": v,
                       "payload": {"color": "red" if i % 2 else "blue", "i": i}})
    points.append({"id": 99, "vector": [0.5, 0.5, 0.5, 0.5],
                   "payload": {"color": "green", "i": 99, "note": XSS}})
    server.api("PUT", "/collections/vecs/points", {"points": points}, key)
    return points


class Page:
    """The console in one browser page, with the helpers the checks share."""

    def __init__(self, browser, base):
        self.page = browser.new_page()
        self.dialogs = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.console_errors = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(str(e)))
        self.page.goto(base + "/")
        self.page.wait_for_selector("body[data-ready=true]", timeout=10_000)

    def q(self, sel):
        return self.page.locator(sel)

    def error_text(self):
        e = self.q("#error")
        return e.text_content() if e.is_visible() else ""

    def no_error(self, what):
        self.page.wait_for_timeout(50)
        check(not self.error_text(), f"{what}: error shown: {self.error_text()}")

    def results(self, sel, what):
        """Waits for `sel` to appear or for the error line; fails with the page's error message."""
        self.page.wait_for_selector(f"{sel}, #error:not([hidden])", timeout=15_000)
        check(not self.error_text(), f"{what}: the page shows an error: {self.error_text()}")
        return self.q(sel)

    def open_collection(self, name):
        self.q(f'[data-testid=collection][data-name="{name}"]').click()
        expect(self.q("#collection-name")).to_have_text(name)

    def tab(self, which):
        self.q(f"#tab-{which}").click()


def check_vectors(p, points, tmp):
    # The collection list shows it, with its info.
    expect(p.q('[data-testid=collection][data-name="vecs"]')).to_be_visible()
    p.open_collection("vecs")
    info = p.q("[data-testid=collection-info]")
    expect(info.locator('[data-key="points"]')).to_have_text(str(len(points)))
    expect(info.locator('[data-key="document collection"]')).to_contain_text("no")
    expect(info.locator('[data-key="spaces"]')).to_contain_text("4-d cosine")
    p.no_error("collection info")

    # Browse with a filter: red points have odd i; page size 4 → next page.
    p.q("#filter").fill('{"must": [{"key": "color", "match": {"value": "red"}}]}')
    p.q("#browse-limit").fill("4")
    p.q("#browse-run").click()
    rows = p.q("[data-testid=point-row]")
    expect(rows).to_have_count(4)
    seen = [json.loads(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.id)")]
    check(all(i % 2 == 1 for i in seen), f"filtered rows are not all red: {seen}")
    for t in rows.locator("code").all_text_contents():
        check('"red"' in t and '"blue"' not in t, f"row payload not red: {t}")
    expect(p.q("#browse-next")).to_be_enabled()
    p.q("#browse-next").click()
    expect(p.q("[data-testid=browse-count]")).to_contain_text("page 2")
    page2 = [json.loads(r) for r in rows.evaluate_all("rs => rs.map(r => r.dataset.id)")]
    check(page2 and not set(page2) & set(seen) and all(i % 2 == 1 for i in page2),
          f"second page {page2} after {seen}")
    p.no_error("browse")

    # The malicious payload is text: no <img> anywhere, no dialog, the literal string shown.
    p.q("#filter").fill('{"must": [{"key": "color", "match": {"value": "green"}}]}')
    p.q("#browse-run").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(XSS.replace('"', '\\"'))
    check(p.q("img").count() == 0, "a payload string became an <img> element")

    # A bad filter: the client says so; a server error: its JSON message is shown.
    p.q("#filter").fill("{not json")
    p.q("#browse-run").click()
    expect(p.q("#error")).to_contain_text("not valid JSON")
    p.q("#filter").fill('{"must": [{"key": "color", "bogus": 1}]}')
    p.q("#browse-run").click()
    expect(p.q("#error")).to_be_visible()
    check("invalid_input" in p.error_text(), f"server error not shown: {p.error_text()!r}")
    p.q("#filter").fill("")

    # Vector query: ranked ids with the nearest first.
    p.tab("query")
    expect(p.q("[data-testid=vector-form]")).to_be_visible()
    check(not p.q("[data-testid=text-form]").is_visible(), "text form shown for a plain collection")
    p.q("#vector-input").fill("[0, 1, 0.02, 0]")
    p.q("#vector-k").fill("3")
    p.q("#vector-run").click()
    hits = p.q("[data-testid=hit]")
    expect(hits).to_have_count(3)
    ids = [json.loads(x) for x in hits.evaluate_all("hs => hs.map(h => h.dataset.id)")]
    expected = expected_ranking(points, [0, 1, 0.02, 0], 3)
    check(ids == expected, f"vector query ranked {ids}, expected {expected}")
    p.no_error("vector query")
    p.q("#vector-input").fill("[1, 2]")
    p.q("#vector-run").click()
    expect(p.q("#error")).to_contain_text("dim")


def expected_ranking(points, q, k):
    def cos(a, b):
        na = sum(x * x for x in a) ** 0.5
        nb = sum(x * x for x in b) ** 0.5
        return sum(x * y for x, y in zip(a, b)) / (na * nb)
    return [p["id"] for p in sorted(points, key=lambda p: -cos(p["vector"], q))[:k]]


def check_text(p):
    p.q("[data-testid=collection][data-name=docs]").click()
    expect(p.q("#collection-name")).to_have_text("docs")
    expect(p.q('[data-key="document collection"]')).to_contain_text("yes")
    p.tab("query")
    expect(p.q("[data-testid=text-form]")).to_be_visible()
    for mode in ["bm25", "hybrid"]:
        p.q("#query-text").fill("lighthouse lamp")
        p.q("#query-mode").select_option(mode)
        p.q("#query-run").click()
        top = p.results("[data-testid=chunk]", f"text query ({mode})").first
        marks = [m.lower() for m in top.locator("mark").all_text_contents()]
        check(any(m.startswith("lamp") or m.startswith("lighthouse") for m in marks),
              f"{mode}: no <mark> of a query term in the top chunk (marks: {marks})")
        check(p.q("img").count() == 0, f"{mode}: chunk text became an <img> element")
        cite = top.locator("[data-testid=citation]").text_content()
        check("lighthouses" in cite.lower() and "bytes" in cite,
              f"{mode}: citation line {cite!r} lacks the title/source or byte range")
    p.tab("ask")
    p.q("#ask-question").fill("Who trimmed the lamp wick?")
    p.q("#ask-run").click()
    passages = p.results("[data-testid=passage]", "ask")
    nums = passages.evaluate_all("ps => ps.map(p => p.dataset.citation)")
    check(nums == [str(i + 1) for i in range(len(nums))], f"passages not numbered 1..n: {nums}")
    expect(passages.first.locator(".cnum")).to_have_text("[1]")
    expect(p.q("[data-testid=ask-answer]")).to_be_visible()


def check_auth(p, server, key):
    # Without a key the API answers 401 and the page shows its message.
    expect(p.q("#error")).to_be_visible()
    check("unauthorized" in p.error_text(), f"no 401 message: {p.error_text()!r}")
    p.q("#api-key").fill(key)
    p.q("#key-save").click()
    expect(p.q('[data-testid=collection][data-name="vecs"]')).to_be_visible()
    p.no_error("after entering the key")
    p.open_collection("vecs")
    p.tab("query")
    p.q("#vector-input").fill("[1, 0, 0, 0]")
    p.q("#vector-k").fill("2")
    p.q("#vector-run").click()
    expect(p.q("[data-testid=hit]")).to_have_count(2)
    # The key survives a reload (sessionStorage), and "Forget key" drops it.
    p.page.reload()
    p.page.wait_for_selector("body[data-ready=true]")
    expect(p.q('[data-testid=collection][data-name="vecs"]')).to_be_visible()
    p.q("#key-clear").click()
    expect(p.q("#error")).to_contain_text("unauthorized")


def run(args, tmp, pw, browser, artifacts):
    def keep(p, name):
        if p is None:
            return
        try:
            p.page.screenshot(path=os.path.join(artifacts, f"{name}.png"), full_page=True)
            with open(os.path.join(artifacts, f"{name}.html"), "w") as f:
                f.write(p.page.content())
        except Exception as e:  # the page may be gone; the failure message matters more
            print(f"(could not save the page: {e})", file=sys.stderr)

    # --- 1. auth off -----------------------------------------------------------------------------
    data = os.path.join(tmp, "noauth")
    os.makedirs(data)
    if not args.skip_text:
        docs = os.path.join(tmp, "docs")
        os.makedirs(docs)
        files = []
        for name, text in DOCS.items():
            path = os.path.join(docs, name)
            with open(path, "w") as f:
                f.write(text)
            files.append(path)
        r = subprocess.run([args.sextant, "--data", data, "ingest", "docs", *files,
                            "--model", args.model, "--no-splade"],
                           capture_output=True, text=True, timeout=300)
        check(r.returncode == 0, f"sextant ingest failed ({r.returncode}):\n{r.stderr[-3000:]}")
    server = Server(args.sextant, data, auth=False)
    p = None
    try:
        points = make_vectors(server)
        p = Page(browser, server.base)
        check_vectors(p, points, tmp)
        print("ok: no-auth console: list, info, browse + filter + paging, XSS as text, errors, "
              "vector query")
        if not args.skip_text:
            check_text(p)
            print("ok: text query (bm25, hybrid) highlights + citations; ask passages")
        check(not p.dialogs, f"a dialog opened: {p.dialogs}")
        # Uncaught exceptions and CSP refusals; answers with error statuses are expected above.
        errors = [e for e in p.console_errors if not e.startswith("Failed to load resource")]
        check(not errors, f"script errors: {errors}")
    except Exception:
        keep(p, "noauth")
        raise
    finally:
        server.stop()

    # --- 2. auth on ------------------------------------------------------------------------------
    data = os.path.join(tmp, "auth")
    os.makedirs(data)
    r = subprocess.run([args.sextant, "--data", data, "keys", "create", "--role", "admin"],
                       capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, f"sextant keys create failed: {r.stderr}")
    key = r.stdout.strip().splitlines()[-1]  # the key is the only line on stdout
    server = Server(args.sextant, data, auth=True)
    p = None
    try:
        make_vectors(server, key)
        p = Page(browser, server.base)
        check_auth(p, server, key)
        check(not p.dialogs, f"a dialog opened: {p.dialogs}")
        print("ok: auth console: 401 shown, key box, vector query, key kept per session")
    except Exception:
        keep(p, "auth")
        raise
    finally:
        server.stop()


def find_chromium(given):
    for c in [given, "chromium", "chromium-browser", "google-chrome"]:
        if c and shutil.which(c):
            return shutil.which(c)
    raise Failure("no Chromium found: apt-get install -y chromium, or pass --chromium PATH")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sextant", help="path to the sextant binary")
    ap.add_argument("--skip-text", action="store_true",
                    help="skip the document collection (ingest, text query, ask)")
    ap.add_argument("--chromium", help="the Chromium binary (default: chromium on PATH)")
    ap.add_argument("--model", default="models/all-MiniLM-L6-v2",
                    help="embedding model directory for ingest")
    args = ap.parse_args()
    args.sextant = os.path.abspath(args.sextant)
    artifacts = tempfile.mkdtemp(prefix="sextant-console-fail-")
    started = time.time()
    try:
        chromium = find_chromium(args.chromium)
        with tempfile.TemporaryDirectory(prefix="sextant-console-") as tmp, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            try:
                run(args, tmp, pw, browser, artifacts)
            finally:
                browser.close()
    except Exception as e:
        if not isinstance(e, (Failure, AssertionError)):
            traceback.print_exc()
        print(f"FAIL: console test: {e}", file=sys.stderr)
        saved = os.listdir(artifacts)
        if saved:
            print(f"screenshots and page HTML: {artifacts} ({', '.join(sorted(saved))})",
                  file=sys.stderr)
        return 1
    shutil.rmtree(artifacts, ignore_errors=True)
    print(f"console test passed in {time.time() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Read the built book in a real browser (headless Chromium over the DevTools protocol) and fail on
what a reader would see broken.

    python tools/browser_test.py                   # the self-test (fixture pages), then the book
    python tools/browser_test.py --self-test-only  # only prove that every detector fires
    python tools/browser_test.py --book-only --html _build/html

On every page of the book, after MathJax has typeset the math, it fails on:
  raw TeX           TeX left as text (`\\frac`, `\\(`, `$x$`, ...) outside code: math never typeset
  MathJax error     a formula MathJax could not typeset (`mjx-merror`)
  broken image      an <img> that did not load
  console error     console.error, an uncaught exception, a browser error log entry (404s included)
  foreign host      any request (script, CSS, font, image, fetch) to a host but the local server
  failed request    a request that failed or answered >= 400
  doubled number    a heading or navigation entry numbered twice ("5.3.3. 3.3 Gradient clipping")
  split output      consecutive printed-output blocks of one cell (one table cut into boxes)
  two search boxes  more than one visible search field or button
and on each page with exercises it clicks every hint and every solution cell and fails when one does
not open (or a solution's toggle does not say "solution"), and when a "Predict, then measure"
exercise's measured result shows before it is asked for. Finally it searches the book for a word
and fails without results or with snippets that start with the page's buttons ("....pdf"). It
also reports (without failing) code and output lines
that scroll horizontally and figures shown below 75 % of their size at a 1280 px wide window.

The self-test loads one small page per defect from tools/browser_fixtures/ (and a clean page) and
fails unless each detector reports exactly its defect: the detectors are shown able to fail.

Needs a Chromium (`chromium` from Debian; `--chromium PATH` or $CHROMIUM otherwise) and
websocket-client (pinned in requirements.lock). Offline: the browser resolves no host but 127.0.0.1
and 'localhost'.
"""

from __future__ import annotations

import argparse
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import websocket  # websocket-client

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "browser_fixtures"
FIXTURE_PREFIX = "/__fixtures__/"
WIDTH, HEIGHT = 1280, 900

# --------------------------------------------------------------------------------------------------
# The checks that run inside the page: {"findings": [[kind, detail], ...], "info": {...}}.
PAGE_CHECKS = r"""
(async () => {
  const findings = [];
  const info = {};
  const add = (kind, detail) => findings.push([kind, String(detail).slice(0, 160)]);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  // Shown on screen: laid out, not hidden, not inside a closed <details> (whose content Chromium
  // hides with content-visibility, which keeps its boxes).
  const inClosedDetails = (el) => {
    const d = el.parentElement && el.parentElement.closest("details:not([open])");
    return !!d && !(el.closest("summary") && el.closest("summary").parentElement === d);
  };
  const visible = (el) => !!el && el.getClientRects().length > 0 && !inClosedDetails(el) &&
      getComputedStyle(el).visibility !== "hidden" &&
      (typeof el.checkVisibility !== "function" || el.checkVisibility({visibilityProperty: true}));

  // 1. MathJax has typeset the page (its startup promise resolves after the first typeset).
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    await Promise.race([MathJax.startup.promise, sleep(20000)]);
  }
  info.mathjax = !!(window.MathJax && MathJax.startup);
  info.formulas = document.querySelectorAll("mjx-container").length;
  document.querySelectorAll("mjx-merror, [data-mjx-error]").forEach((e) =>
      add("MathJax error", e.getAttribute("data-mjx-error") || e.textContent));

  // 2. Raw TeX: text outside code that still reads like TeX.
  const TEX = new RegExp([
    String.raw`\\(?:frac|begin|end|mathrm|mathbf|mathcal|mathbb|operatorname|sum|prod|sqrt|`
      + String.raw`left|right|cdot|times|text|softmax|top|alpha|beta|gamma|theta|sigma|mu|`
      + String.raw`lambda|epsilon|le|ge|approx|log|exp)`
      + String.raw`(?![A-Za-z])`,
    String.raw`\\[()\[\]]`, String.raw`\$\$`,
    String.raw`(?:^|[\s(])\$[^$\s](?:[^$]*[^$\s\\])?\$(?=$|[\s.,;:)])`,
  ].join("|"));
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
    acceptNode(n) {
      const p = n.parentElement;
      if (!p || p.closest("pre, code, script, style, textarea, mjx-container, mjx-assistive-mml, "
                          + ".highlight, kbd, samp, .gptlib-zoom, #search-results"))
        return NodeFilter.FILTER_REJECT;
      return NodeFilter.FILTER_ACCEPT;
    },
  });
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const m = n.textContent.match(TEX);
    if (m) {
      const i = Math.max(0, m.index - 40);
      add("raw TeX", n.textContent.slice(i, m.index + 60).replace(/\s+/g, " "));
    }
  }

  // 3. Images load.
  const imgs = [...document.images];
  await Promise.all(imgs.map((img) => img.complete ? null : new Promise((r) => {
    img.addEventListener("load", r); img.addEventListener("error", r); setTimeout(r, 10000);
  })));
  for (const img of imgs) {
    if (!img.complete || img.naturalWidth === 0) add("broken image", img.getAttribute("src"));
  }

  // 4. Doubled section numbers in headings and navigation ("5.3.3. 3.3 Gradient clipping").
  const DOUBLE = /^\s*\d+(?:\.\d+)*\.\s+\d+(?:\.\d+)*\.?\s+\S/;
  const seen = new Set();
  const numbered = "h1, h2, h3, h4, h5, h6, nav a, .toctree-wrapper a, .toc-entry a";
  document.querySelectorAll(numbered).forEach((h) => {
    const t = h.textContent.replace(/\s+/g, " ").replace(/[#¶]\s*$/, "").trim();
    if (DOUBLE.test(t) && !seen.has(t)) { seen.add(t); add("doubled number", t); }
  });

  // 5. Split output: consecutive printed-output blocks of one cell (div.output.stream|stderr).
  const streamKind = (el) => !el || !el.classList.contains("output") ? null
      : el.classList.contains("stream") ? "stdout"
      : el.classList.contains("stderr") ? "stderr" : null;
  document.querySelectorAll(".cell_output").forEach((co) => {
    const kids = [...co.children];
    for (let i = 1; i < kids.length; i++) {
      const a = streamKind(kids[i - 1]), b = streamKind(kids[i]);
      if (a && a === b) {
        add("split output", kids[i - 1].textContent.trim().split("\n")[0]);
        break;
      }
    }
  });

  // 6. One search box.
  const boxes = [...document.querySelectorAll(
      "input[type=search], form.bd-search, .search-button-field, button.search-button")]
      .filter((el) => visible(el) && !el.closest(".search-button__wrapper:not(.show)")
                      && !el.parentElement.closest("form.bd-search, .search-button-field"));
  info.searchBoxes = boxes.length;
  if (boxes.length > 1) {
    add("two search boxes", boxes.map((b) => b.className || b.tagName).join(" + "));
  }

  // 7. Exercises: every hint and every solution cell opens when clicked.
  const hints = [...document.querySelectorAll(".admonition.dropdown, details.dropdown")];
  info.hints = hints.length;
  for (const h of hints) {
    const head = h.querySelector(".admonition-title, summary") || h;
    const title = head.textContent.trim().slice(0, 40);
    const notBody = ".admonition-title, summary, button, .toggle-button";
    const body = [...h.children].filter((c) => !c.matches(notBody));
    const trigger = h.querySelector("button.toggle-button, .admonition-title, summary");
    if (!trigger || body.length === 0) {
      add("hint does not open", title + ": nothing to click"); continue;
    }
    if (body.some(visible)) {
      add("hint does not open", title + ": not collapsed to begin with"); continue;
    }
    trigger.scrollIntoView(); trigger.click();
    await sleep(350);
    if (!body.some(visible)) add("hint does not open", title);
  }
  const sols = [...document.querySelectorAll(".cell.tag_hide-input")];
  info.hiddenCells = sols.length;
  for (const s of sols) {
    const summary = s.querySelector("details > summary");
    const code = s.querySelector(".cell_input pre, pre");
    if (!summary || !code) {
      add("solution does not open", "no toggle in a hide-input cell"); continue;
    }
    const isSolution = code.textContent.includes("BEGIN SOLUTION");
    if (isSolution && !/solution/i.test(summary.textContent)) {
      add("solution not labelled", summary.textContent.trim().replace(/\s+/g, " "));
    }
    summary.scrollIntoView(); summary.click();
    await sleep(50);
    if (!summary.parentElement.open || !visible(code)) {
      add("solution does not open", summary.textContent.trim());
    }
  }
  // 8. A "Predict, then measure" exercise's result is not shown before the reader asks for it.
  document.querySelectorAll(".exercise").forEach((ex) => {
    const t = ex.querySelector(".admonition-title");
    if (!t || !t.textContent.includes("Predict, then measure")) return;
    const next = ex.nextElementSibling;
    const out = next && next.matches(".cell") ? next.querySelector(".cell_output") : null;
    if (out && visible(out) && out.textContent.trim()) {
      add("prediction spoiled", t.textContent.trim().slice(0, 60));
    }
  });
  window.scrollTo(0, 0);

  // Reported, not failed: horizontal scrolling and shrunk figures at this width.
  const scrolls = (sel) => [...document.querySelectorAll(sel)]
      .filter((p) => p.scrollWidth > p.clientWidth + 1);
  info.codeBlocks = document.querySelectorAll(".cell_input pre").length;
  info.codeScrolling = scrolls(".cell_input pre").length;
  info.outputBlocks = document.querySelectorAll(".cell_output pre").length;
  info.outputScrolling = scrolls(".cell_output pre").length;
  info.figures = document.querySelectorAll(".cell_output img").length;
  info.figuresShrunk = [...document.querySelectorAll(".cell_output img")]
      .filter((i) => i.naturalWidth && i.clientWidth < 0.75 * i.naturalWidth)
      .map((i) => Math.round(100 * i.clientWidth / i.naturalWidth));
  return {findings, info};
})()
"""

SEARCH_CHECK = r"""
(async () => {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  for (let i = 0; i < 150; i++) {
    const done = document.querySelector("#search-results .search-summary");
    if (done && !/Searching|Preparing/i.test(done.textContent)) break;
    await sleep(100);
  }
  await sleep(300);   // snippets are filled in as each page is fetched
  const items = [...document.querySelectorAll("#search-results ul.search > li")];
  const context = (li) => li.querySelector("p.context") || {textContent: ""};
  const snippets = items.map((li) => context(li).textContent.trim());
  const summary = document.querySelector("#search-results .search-summary");
  return {results: items.length, snippets: snippets.slice(0, 50),
          summary: summary ? summary.textContent : ""};
})()
"""


# --------------------------------------------------------------------------------------------------
class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the book, and tools/browser_fixtures under /__fixtures__/."""

    def translate_path(self, path: str) -> str:
        clean = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if clean.startswith(FIXTURE_PREFIX):
            return str(FIXTURES / clean[len(FIXTURE_PREFIX) :])
        return super().translate_path(path)

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def find_chromium(explicit: str | None) -> str:
    for name in [
        explicit,
        os.environ.get("CHROMIUM"),
        "chromium",
        "chromium-browser",
        "google-chrome",
    ]:
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    sys.exit(
        "browser_test: no Chromium found. Install it (Debian: `apt-get install -y chromium`) "
        "or pass --chromium PATH; the browser test is run by `make browser-test` and .ci/run, "
        "not by `make test`."
    )


class Browser:
    """A headless Chromium and one page, driven over the DevTools protocol (flat sessions)."""

    def __init__(self, chromium: str, timeout: float = 60.0):
        self.profile = tempfile.mkdtemp(prefix="gptlib-chromium-")
        args = [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-sync",
            "--disable-background-networking",
            "--disable-component-update",
            "--mute-audio",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
            f"--window-size={WIDTH},{HEIGHT}",
            "--remote-debugging-port=0",
            f"--user-data-dir={self.profile}",
            "about:blank",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        port_file = Path(self.profile) / "DevToolsActivePort"
        deadline = time.time() + timeout
        while not (port_file.exists() and len(port_file.read_text().split("\n")) >= 2):
            if self.proc.poll() is not None or time.time() > deadline:
                err = (
                    self.proc.stderr.read().decode(errors="replace")[-2000:]
                    if self.proc.stderr
                    else ""
                )
                self.close()
                raise RuntimeError(f"Chromium did not start ({chromium}):\n{err}")
            time.sleep(0.05)
        port, path = port_file.read_text().split("\n")[:2]
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}{path}", timeout=timeout, suppress_origin=True
        )
        self.next_id = 0
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, session: bool = False, **params) -> dict:
        self.next_id += 1
        msg: dict = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def pump(self, seconds: float, until: str | None = None) -> None:
        """Collect events for `seconds` (or until an event named `until` arrives)."""
        end = time.time() + seconds
        while time.time() < end:
            self.ws.settimeout(max(0.01, end - time.time()))
            try:
                msg = json.loads(self.ws.recv())
            except websocket.WebSocketTimeoutException:
                break
            finally:
                self.ws.settimeout(60)
            if "method" in msg:
                self.events.append(msg)
                if msg["method"] == until:
                    return

    def open(self, url: str) -> None:
        self.events = []
        self.call("Page.navigate", session=True, url=url)
        self.pump(30, until="Page.loadEventFired")

    def evaluate(self, js: str) -> dict:
        r = self.call(
            "Runtime.evaluate",
            session=True,
            expression=js,
            awaitPromise=True,
            returnByValue=True,
            timeout=90000,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"page check raised: {r['exceptionDetails']}")
        return r["result"]["value"]

    def screenshot(self, path: Path) -> None:
        data = self.call("Page.captureScreenshot", session=True, format="png")["data"]
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        try:
            if getattr(self, "ws", None):
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def event_findings(events: list[dict], origin: str) -> list[list[str]]:
    """Console errors, uncaught exceptions, foreign hosts and failed requests from page events."""
    out: list[list[str]] = []
    host = urllib.parse.urlsplit(origin).netloc
    urls: dict[str, str] = {}
    for e in events:
        m, p = e["method"], e.get("params", {})
        if m == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            text = (d.get("exception") or {}).get("description") or d.get("text", "")
            out.append(
                [
                    "console error",
                    f"uncaught: {text.splitlines()[0] if text else ''} "
                    f"({d.get('url', '')}:{d.get('lineNumber', '')})",
                ]
            )
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            args = " ".join(
                str(a.get("value", a.get("description", ""))) for a in p.get("args", [])
            )
            out.append(["console error", f"console.{p['type']}: {args}"])
        elif m == "Log.entryAdded" and p["entry"].get("level") == "error":
            entry = p["entry"]
            out.append(
                [
                    "console error",
                    f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}",
                ]
            )
        elif m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            urls[p["requestId"]] = url
            parts = urllib.parse.urlsplit(url)
            if parts.scheme in ("http", "https", "ws", "wss") and parts.netloc != host:
                out.append(["foreign host", url])
        elif m == "Network.responseReceived" and p["response"].get("status", 200) >= 400:
            out.append(["failed request", f"{p['response']['status']} {p['response']['url']}"])
        elif m == "Network.loadingFailed" and not p.get("canceled"):
            out.append(["failed request", f"{p.get('errorText')} {urls.get(p['requestId'], '')}"])
    return out


def check_page(browser: Browser, origin: str, path: str) -> tuple[list[list[str]], dict]:
    browser.open(origin + path)
    result = browser.evaluate(PAGE_CHECKS)
    browser.pump(0.3)  # late console messages
    findings = result["findings"] + event_findings(browser.events, origin)
    unique: list[list[str]] = []
    for f in findings:
        if f not in unique:
            unique.append(f)
    return unique, result["info"]


def check_search(browser: Browser, origin: str, word: str) -> tuple[list[list[str]], dict]:
    browser.open(f"{origin}/search.html?q={urllib.parse.quote(word)}")
    r = browser.evaluate(SEARCH_CHECK)
    findings = [
        f
        for f in event_findings(browser.events, origin)
        if f[0] != "failed request" or "searchindex" in f[1] or "/_static/" in f[1]
    ]
    if r["results"] == 0:
        findings.append(["search finds nothing", f"{word!r}: {r['summary'].strip()[:100]}"])
    for s in r["snippets"]:
        if s.startswith("....") or ".ipynb .pdf" in s or ".pdf" in s[:40]:
            findings.append(["search snippet", s[:80]])
            break
    return findings, {"results": r["results"]}


# --------------------------------------------------------------------------------------------------
# fixture page -> the one kind of finding it must produce (None: a clean page, no finding at all)
SELF_TEST = {
    "clean.html": None,
    "raw_tex.html": "raw TeX",
    "mathjax_error.html": "MathJax error",
    "broken_image.html": "broken image",
    "console_error.html": "console error",
    "uncaught_error.html": "console error",
    "foreign_host.html": "foreign host",
    "doubled_number.html": "doubled number",
    "split_output.html": "split output",
    "two_search_boxes.html": "two search boxes",
    "hint_does_not_open.html": "hint does not open",
    "solution_does_not_open.html": "solution does not open",
    "solution_not_labelled.html": "solution not labelled",
    "prediction_spoiled.html": "prediction spoiled",
}


def self_test(browser: Browser, origin: str) -> list[str]:
    failures = []
    for page, kind in SELF_TEST.items():
        findings, info = check_page(browser, origin, FIXTURE_PREFIX + page)
        # the broken image's 404 is also a failed request and a console error: that is its point
        kinds = {
            f[0]
            for f in findings
            if not (kind == "broken image" and f[0] in ("failed request", "console error"))
        }
        if kind == "foreign host":
            kinds -= {
                "failed request",
                "console error",
            }  # the foreign host does not resolve (offline)
        want = set() if kind is None else {kind}
        if kind is None and not (info["formulas"] and info["hints"] and info["hiddenCells"]):
            kinds.add("the clean page's formula, hint or hidden cell was not seen")
        status = "ok" if kinds == want else "FAIL"
        print(
            f"  self-test {page:28s} expects {kind or 'nothing':24s} "
            f"got {sorted(kinds) or 'nothing'} {status}"
        )
        if kinds != want:
            failures.append(f"{page}: expected {want or 'no finding'}, got {findings}")
    findings, info = check_search(browser, origin, "zzqxjvnotaword")
    got_nothing = any(f[0] == "search finds nothing" for f in findings)
    print(
        f"  self-test search for a word not in the book reports 'search finds nothing': "
        f"{'ok' if got_nothing else 'FAIL'}"
    )
    if not got_nothing:
        failures.append(
            f"search for a missing word: expected 'search finds nothing', got {findings} {info}"
        )
    return failures


def book_pages(html: Path) -> list[str]:
    """Every page of the book but the search page (checked by searching), the index and redirects
    (index.html only sends the browser to the first page, which is checked itself)."""
    skip = {"search.html", "genindex.html"}
    return sorted(
        "/" + p.relative_to(html).as_posix()
        for p in html.rglob("*.html")
        if not p.relative_to(html).parts[0].startswith(("_", "."))
        and p.name not in skip
        and 'http-equiv="refresh"' not in p.read_text(errors="replace")[:2000].lower()
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--html", type=Path, default=ROOT / "_build" / "html", help="the built book")
    ap.add_argument(
        "--chromium", help="the Chromium binary (default: chromium on PATH, or $CHROMIUM)"
    )
    ap.add_argument("--search-word", default="attention", help="a word the book's search must find")
    ap.add_argument("--self-test-only", action="store_true", help="only prove each detector fires")
    ap.add_argument("--book-only", action="store_true", help="skip the self-test")
    ap.add_argument(
        "--screenshots", type=Path, help="write a screenshot of each page into this folder"
    )
    args = ap.parse_args(argv)
    if not args.self_test_only and not (args.html / "index.html").exists():
        print(
            f"browser_test: no built book at {args.html} (run `make book` first)", file=sys.stderr
        )
        return 2
    t0 = time.time()
    server, origin = serve(args.html if args.html.exists() else FIXTURES)
    browser = Browser(find_chromium(args.chromium))
    failures: list[str] = []
    try:
        if not args.book_only:
            print("Self-test: each detector on a page with that defect")
            failures += [f"self-test {f}" for f in self_test(browser, origin)]
        if not args.self_test_only:
            print(f"The book at {args.html}, {WIDTH}x{HEIGHT}")
            for path in book_pages(args.html):
                t = time.time()
                findings, info = check_page(browser, origin, path)
                if args.screenshots:
                    args.screenshots.mkdir(parents=True, exist_ok=True)
                    browser.screenshot(
                        args.screenshots / (path.strip("/").replace("/", "_") + ".png")
                    )
                extra = (
                    f"{info['formulas']} formulas, {info['hints']} hints, "
                    f"{info['hiddenCells']} hidden cells; code lines scrolling "
                    f"{info['codeScrolling']}/{info['codeBlocks']}, outputs "
                    f"{info['outputScrolling']}/{info['outputBlocks']}, figures below 75 %: "
                    f"{info['figuresShrunk'] or 'none'}/{info['figures']}"
                )
                print(
                    f"  {path:40s} {'ok' if not findings else 'FAIL'} "
                    f"({time.time() - t:.1f} s; {extra})"
                )
                for kind, detail in findings:
                    print(f"      {kind}: {detail}")
                    failures.append(f"{path}: {kind}: {detail}")
            findings, info = check_search(browser, origin, args.search_word)
            print(
                f"  search for {args.search_word!r}: {info['results']} results "
                f"{'ok' if not findings else 'FAIL'}"
            )
            failures += [f"search: {k}: {d}" for k, d in findings]
    finally:
        browser.close()
        server.shutdown()
    print(f"browser test: {len(failures)} failure(s) in {time.time() - t0:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

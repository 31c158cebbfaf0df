"""tools/browser_test.py's Python side, without a browser (the browser itself runs in `make
browser-test`, whose self-test shows every in-page detector firing on a fixture page with its
defect)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import browser_test as bt  # noqa: E402

ORIGIN = "http://127.0.0.1:8123"


def ev(method, **params):
    return {"method": method, "params": params}


def kinds(events):
    return [k for k, _ in bt.event_findings(events, ORIGIN)]


def test_requests_to_another_host_are_foreign_and_local_ones_are_not():
    events = [
        ev("Network.requestWillBeSent", requestId="1", request={"url": ORIGIN + "/_static/x.js"}),
        ev(
            "Network.requestWillBeSent",
            requestId="2",
            request={"url": "data:image/png;base64,AAAA"},
        ),
        ev("Network.requestWillBeSent", requestId="3", request={"url": "https://unpkg.com/thebe"}),
        ev("Network.requestWillBeSent", requestId="4", request={"url": "http://127.0.0.1:9/x.css"}),
    ]
    assert kinds(events) == ["foreign host", "foreign host"]


def test_console_errors_exceptions_and_failed_requests_are_reported():
    events = [
        ev("Runtime.consoleAPICalled", type="log", args=[{"value": "fine"}]),
        ev("Runtime.consoleAPICalled", type="error", args=[{"value": "boom"}]),
        ev(
            "Runtime.exceptionThrown",
            exceptionDetails={
                "text": "Uncaught",
                "exception": {
                    "description": "SyntaxError: Identifier 'THEBE_JS_URL' has already been "
                    "declared"
                },
            },
        ),
        ev("Log.entryAdded", entry={"level": "warning", "source": "js", "text": "meh"}),
        ev("Log.entryAdded", entry={"level": "error", "source": "network", "text": "404"}),
        ev("Network.requestWillBeSent", requestId="7", request={"url": ORIGIN + "/a.png"}),
        ev(
            "Network.responseReceived",
            requestId="7",
            response={"status": 404, "url": ORIGIN + "/a.png"},
        ),
        ev("Network.loadingFailed", requestId="7", errorText="net::ERR_FAILED"),
        ev("Network.loadingFailed", requestId="8", errorText="net::ERR_ABORTED", canceled=True),
    ]
    found = bt.event_findings(events, ORIGIN)
    assert [k for k, _ in found] == [
        "console error",
        "console error",
        "console error",
        "failed request",
        "failed request",
    ]
    assert "THEBE_JS_URL" in found[1][1] and "/a.png" in found[4][1]


def test_every_fixture_page_is_in_the_self_test_and_every_detector_has_one():
    fixtures = {p.name for p in bt.FIXTURES.glob("*.html")}
    assert fixtures == set(bt.SELF_TEST)
    detectors = {
        "solution not labelled",
        "prediction spoiled",
        "raw TeX",
        "MathJax error",
        "broken image",
        "console error",
        "foreign host",
        "doubled number",
        "split output",
        "two search boxes",
        "hint does not open",
        "solution does not open",
    }
    assert detectors == {k for k in bt.SELF_TEST.values() if k}
    for kind in detectors:  # each kind is a finding the page checks can produce
        assert f'"{kind}"' in bt.PAGE_CHECKS or kind in ("console error", "foreign host")


def test_book_pages_skips_search_index_and_static_files(tmp_path):
    for rel in [
        "index.html",
        "intro.html",
        "chapters/02_attention.html",
        "search.html",
        "genindex.html",
        "_static/x.html",
        "_sources/y.html",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("<html></html>")
    redirect = '<meta http-equiv="Refresh" content="0; url=intro.html" />'   # as Sphinx writes it
    (tmp_path / "redirect.html").write_text(redirect)
    assert bt.book_pages(tmp_path) == ["/chapters/02_attention.html", "/index.html", "/intro.html"]


def test_without_a_chromium_it_says_how_to_get_one(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path), "CHROMIUM": ""}
    (tmp_path / "index.html").write_text("<html></html>")
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "browser_test.py"), "--html", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode != 0 and "apt-get install -y chromium" in r.stderr, r.stderr


def test_without_a_built_book_it_says_make_book(tmp_path):
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "browser_test.py"), "--html", str(tmp_path / "no")],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "make book" in r.stderr

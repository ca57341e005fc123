"""The built site in a real browser: ``python docs/check_site.py [--html docs/_build/html]``.

Serves the built HTML on 127.0.0.1, opens pages in headless Chromium (Debian's ``chromium`` package) through
the Chrome DevTools protocol (the ``websocket-client`` package), and

- saves full-page screenshots of the landing page, one tutorial and one API page under
  ``docs/_build/screenshots/``;
- fails on console errors, uncaught exceptions and failed requests on those pages and on every tutorial page;
- fails if an image of a tutorial page does not load, or if a tutorial whose notebook draws with matplotlib
  shows no image (the figures were lost, e.g. under a non-inline matplotlib backend).

The site needs no network: a request that leaves 127.0.0.1 is reported as a failure. It prints each page it
opened and, at the end, every screenshot it saved (path and size).
Exit status: 0 when every check passes, 1 when one fails, 2 when Chromium or websocket-client is missing
(skipped) outside CI; under CI (``CI=true``, as ``.ci/run`` sets it) a missing browser is a failure, 1.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

DOCS = pathlib.Path(__file__).resolve().parent
SHOTS = {  # screenshot name -> page
    "landing": "index.html",
    "tutorial": "tutorials/monge_gap.html",
    "api": "api/generated/ott_fast.entropic.html",
}
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
    "about:blank",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


@contextlib.contextmanager
def serve(root: pathlib.Path) -> Iterator[str]:
    """An HTTP server of ``root`` on a free local port, in a thread; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@contextlib.contextmanager
def chromium(binary: str) -> Iterator[int]:
    """Headless Chromium with a fresh profile; yields its DevTools port."""
    profile = tempfile.mkdtemp(prefix="ott-fast-chromium-")
    proc = subprocess.Popen(
        [binary, f"--user-data-dir={profile}", *CHROMIUM_FLAGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_file = pathlib.Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Chromium did not start (exit status {proc.poll()})")
            time.sleep(0.1)
        yield int(port_file.read_text().split()[0])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


class Page:
    """One browser tab, driven over the DevTools protocol."""

    def __init__(self, port: int) -> None:
        import websocket  # websocket-client

        req = urllib.request.Request(f"http://127.0.0.1:{port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=30) as resp:
            target = json.load(resp)
        self.port, self.target_id = port, target["id"]
        self.ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=60, suppress_origin=True)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            if any(e["method"] == event for e in self.events[seen:]):
                return
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self.events.append(msg)
        raise TimeoutError(f"no {event} within {timeout} s")

    def open(self, url: str) -> list[str]:
        """Loads ``url`` and returns its problems: console errors, exceptions, failed requests."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.settle()
        return self.problems()

    def settle(self, quiet: float = 0.5) -> None:
        """Reads events until none arrives for ``quiet`` seconds (late scripts, images, console output)."""
        self.ws.settimeout(quiet)
        with contextlib.suppress(Exception):
            while True:
                msg = json.loads(self.ws.recv())
                if "method" in msg:
                    self.events.append(msg)
        self.ws.settimeout(60)

    def problems(self) -> list[str]:
        out = []
        requests = {}
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Network.requestWillBeSent":
                requests[p["requestId"]] = p["request"]["url"]
                if not p["request"]["url"].startswith(("http://127.0.0.1", "data:", "about:", "blob:")):
                    out.append(f"external request: {p['request']['url']}")
            elif e["method"] == "Network.loadingFailed" and not p.get("canceled"):
                out.append(f"failed request: {requests.get(p['requestId'], '?')} ({p.get('errorText')})")
            elif e["method"] == "Network.responseReceived" and p["response"]["status"] >= 400:
                out.append(f"HTTP {p['response']['status']}: {p['response']['url']}")
            elif e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p["args"])
                out.append(f"console.{p['type']}: {args}")
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"console error: {p['entry']['text']} ({p['entry'].get('url', '')})")
        return out

    def images(self) -> list[dict[str, Any]]:
        expr = (
            "Array.from(document.images).map(i => ({src: i.currentSrc || i.src, complete: i.complete,"
            " width: i.naturalWidth}))"
        )
        return self.call("Runtime.evaluate", expression=expr, returnByValue=True)["result"]["value"]

    def screenshot(self, path: pathlib.Path, max_height: int = 6000) -> tuple[int, int]:
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = 1280, int(min(max(size["height"], 900), max_height))
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.settle(0.3)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        self.call("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1, mobile=False)
        path.write_bytes(base64.b64decode(data))
        return width, height

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close()
        with contextlib.suppress(Exception):
            urllib.request.urlopen(f"http://127.0.0.1:{self.port}/json/close/{self.target_id}", timeout=10).close()


def draws(rel: str) -> bool:
    """Whether the notebook behind the tutorial page ``rel`` draws figures with matplotlib."""
    nb = DOCS.parent / "examples" / (pathlib.Path(rel).stem + ".ipynb")
    if not nb.exists():
        return False
    cells = json.loads(nb.read_text())["cells"]
    return any("matplotlib" in "".join(c["source"]) or "trace.plot" in "".join(c["source"]) for c in cells)


def under_ci() -> bool:
    """Whether this runs under CI (``CI`` set to true, 1 or yes), where nothing may be skipped."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(what: str) -> int:
    """A missing prerequisite: a skip (2) locally, a loud failure (1) under CI."""
    if under_ci():
        print(f"check_site: FAILED, {what}: the browser check cannot be skipped under CI", file=sys.stderr)
        return 1
    print(f"check_site: SKIPPED, {what}")
    return 2


def check(html: pathlib.Path, shots: pathlib.Path, binary: str) -> int:
    tutorials = sorted(p.relative_to(html).as_posix() for p in (html / "tutorials").glob("*.html"))
    if not tutorials:
        print(f"check_site: no tutorial pages under {html / 'tutorials'}")
        return 1
    shots.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    taken: list[str] = []
    with serve(html) as base, chromium(binary) as port:
        page = Page(port)
        try:
            pages = list(dict.fromkeys([*SHOTS.values(), *tutorials]))
            for rel in pages:
                problems = page.open(base + rel)
                imgs = page.images()
                broken = [i["src"] for i in imgs if not i["complete"] or i["width"] == 0]
                line = f"{rel}: {len(imgs)} images"
                if rel in tutorials:
                    if not imgs and draws(rel):
                        problems.append("no image, but its notebook draws figures")
                    problems += [f"image did not load: {src}" for src in broken]
                for name, target in SHOTS.items():
                    if target == rel:
                        w, h = page.screenshot(shots / f"{name}.png")
                        line += f", screenshot {shots / f'{name}.png'} ({w}x{h})"
                        taken.append(f"{shots / f'{name}.png'} ({rel}, {w}x{h})")
                print(line + ("" if not problems else f", {len(problems)} problems"))
                for p in problems:
                    print(f"    {p}")
                failures += [f"{rel}: {p}" for p in problems]
        finally:
            page.close()
    print(f"check_site: {len(taken)} screenshots taken:")
    for shot in taken:
        print(f"    {shot}")
    if len(taken) != len(SHOTS):
        failures.append(f"{len(SHOTS) - len(taken)} of the screenshots {sorted(SHOTS)} were not taken")
    if failures:
        print(f"check_site: FAILED, {len(failures)} problems")
        return 1
    print(f"check_site: ok ({len(pages)} pages, {len(taken)} screenshots in {shots})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default=str(DOCS / "_build" / "html"), help="the built site")
    parser.add_argument("--out", default=str(DOCS / "_build" / "screenshots"), help="where screenshots go")
    args = parser.parse_args(argv)
    binary = os.environ.get("CHROMIUM") or find_chromium()
    if binary is None:
        return missing("no Chromium found (apt-get install chromium)")
    try:
        import websocket  # noqa: F401
    except ImportError:
        return missing("websocket-client is not installed (pip install websocket-client)")
    html = pathlib.Path(args.html)
    if not (html / "index.html").exists():
        print(f"check_site: {html} has no index.html; build the site first")
        return 1
    socket.setdefaulttimeout(60)
    return check(html, pathlib.Path(args.out), binary)


if __name__ == "__main__":
    sys.exit(main())

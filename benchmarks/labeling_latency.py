"""Rating-app speed through the real server on loopback, measured in one run.

1. Click-to-next-image latency: one rater in headless Debian chromium presses Y `--ratings`
   times; each latency runs from the keydown to the next image being on screen and loaded,
   measured inside the page. Target: p95 <= 150 ms.
2. Throughput: `--raters` concurrent raters over HTTP (gradio_client) rate as fast as the
   server answers; ratings per second over the wall time, plus their per-request latency.
   Baseline, on the same server just before: one of them rating `--per-rater` times alone. Prints
   the ratio of the two throughputs (how far the server scales with concurrent raters).

    .venv/bin/python benchmarks/labeling_latency.py [--ratings 200] [--raters 20] [--per-rater 25]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pandas as pd
import psutil
from PIL import Image, ImageDraw

from labeling_app.accounts import Accounts
from labeling_app.http_client import RatingClient

PASSWORD = "bench-password"
TARGET_P95_MS = 150.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

# Records keydown -> next sample's image loaded, inside the page (no driver round trips in the figure).
LATENCY_PROBE = """
window.latencies = [];
document.addEventListener("keydown", (e) => { if (e.key === "y") window.pressedAt = performance.now(); }, true);
new MutationObserver(() => {
  const img = document.querySelector("#image img.sample");
  if (!img || img.dataset.sampleId === window.shownId) return;
  window.shownId = img.dataset.sampleId;
  const done = () => {
    if (window.pressedAt != null) { window.latencies.push(performance.now() - window.pressedAt); window.pressedAt = null; }
  };
  if (img.complete && img.naturalWidth) done(); else img.addEventListener("load", done, {once: true});
}).observe(document.querySelector("#image"), {subtree: true, childList: true, attributes: true});
"""


def write_run(run: Path, n: int) -> None:
    (run / "images").mkdir(parents=True)
    rows = []
    for i in range(n):
        image = Image.new("RGB", (64, 64), (255, 255, 255))
        ImageDraw.Draw(image).ellipse([12 + i % 8, 12, 44, 44], fill=(220, 30, 30))
        image.save(run / "images" / f"{i:06d}.png")
        rows.append({"id": f"{i:06d}", "prompt": "a red circle", "category": "color", "split": "train", "seed": i,
                     "model": "bench", "guidance": 7.5, "steps": 20, "image_path": f"images/{i:06d}.png"})
    pd.DataFrame(rows).to_parquet(run / "samples.parquet", index=False)


def start_server(run: Path, accounts: Path, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "align.cli", "label", str(run), "--port", str(port), "--accounts", str(accounts),
               "--quiet"]
    server = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT,
                              env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    for _ in range(600):
        try:
            if httpx.get(url + "/gradio_api/startup-events", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"server did not start:\n{log.read_text()}")


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def browser_latencies(url: str, name: str, ratings: int, chromium: str) -> list[float]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.goto(url)
        page.locator("input[type=text]").fill(name)
        page.locator("input[type=password]").fill(PASSWORD)
        page.get_by_role("button", name="Login").click()
        page.locator("#image img.sample").wait_for()
        page.evaluate(LATENCY_PROBE)
        for i in range(ratings):
            page.keyboard.press("y")
            page.wait_for_function(f"window.latencies.length >= {i + 1}", polling=5)
        latencies = page.evaluate("window.latencies")
        browser.close()
    return latencies


def rate_over_http(client: RatingClient, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        t0 = time.perf_counter()
        receipt = client.thumbs_up()
        latencies.append(1000 * (time.perf_counter() - t0))
        assert receipt["outcome"] == "saved", receipt
    return latencies


def logged_in(url: str, name: str) -> RatingClient:
    client = RatingClient(url, name, PASSWORD)
    client.start()
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratings", type=int, default=200, help="ratings for the click-to-next-image latency")
    parser.add_argument("--raters", type=int, default=20, help="concurrent raters for the throughput")
    parser.add_argument("--per-rater", type=int, default=25, help="ratings per concurrent rater")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="labeling-bench-") as tmp:
        root = Path(tmp)
        # Every session also holds a leased current and next image.
        write_run(root / "run", args.ratings + (args.raters + 1) * args.per_rater + 2 * (args.raters + 1) + 10)
        accounts = Accounts(root / "raters.db")
        names = ["clicker"] + [f"rater{i:02d}" for i in range(args.raters)]
        for name in names:
            accounts.add(name, PASSWORD)
        server, url = start_server(root / "run", root / "raters.db", root / "server.log")
        try:
            clicks = browser_latencies(url, "clicker", args.ratings, args.chromium)
            with ThreadPoolExecutor(args.raters) as pool:
                clients = list(pool.map(lambda n: logged_in(url, n), names[1:]))  # logins are not part of the figure
                started = time.perf_counter()
                alone = rate_over_http(clients[0], args.per_rater)  # the baseline: one rater, nobody else
                alone_wall = time.perf_counter() - started
                server_cpu = psutil.Process(server.pid).cpu_times()
                started = time.perf_counter()
                per_rater = list(pool.map(lambda c: rate_over_http(c, args.per_rater), clients))
                wall = time.perf_counter() - started
                server_cpu_s = sum(psutil.Process(server.pid).cpu_times()[:2]) - sum(server_cpu[:2])
            for client in clients:
                client.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)

    requests = [ms for rater in per_rater for ms in rater]
    figures = {
        "click_to_next_image_ms": {"n": len(clicks), "p50": percentile(clicks, 50), "p95": percentile(clicks, 95)},
        "concurrent": {
            "raters": args.raters,
            "ratings": len(requests),
            "wall_s": wall,
            "ratings_per_s": len(requests) / wall,
            "request_p50_ms": percentile(requests, 50),
            "request_p95_ms": percentile(requests, 95),
            "server_cpu_ms_per_rating": 1000 * server_cpu_s / len(requests),
        },
        "alone": {"ratings": len(alone), "wall_s": alone_wall, "ratings_per_s": len(alone) / alone_wall,
                  "request_p50_ms": percentile(alone, 50)},
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }
    c, a = figures["concurrent"], figures["alone"]
    figures["concurrent_vs_alone"] = c["ratings_per_s"] / a["ratings_per_s"]
    print(f"click-to-next-image over {len(clicks)} ratings (chromium, loopback): "
          f"p50 {figures['click_to_next_image_ms']['p50']:.1f} ms, p95 {figures['click_to_next_image_ms']['p95']:.1f} ms"
          f" (target p95 <= {TARGET_P95_MS:.0f} ms)")
    print(f"{c['raters']} concurrent raters over HTTP: {c['ratings']} ratings in {c['wall_s']:.1f} s ="
          f" {c['ratings_per_s']:.1f} ratings/s; per request p50 {c['request_p50_ms']:.1f} ms,"
          f" p95 {c['request_p95_ms']:.1f} ms; server CPU {c['server_cpu_ms_per_rating']:.1f} ms per rating")
    print(f"1 rater alone over HTTP (baseline): {a['ratings']} ratings in {a['wall_s']:.1f} s ="
          f" {a['ratings_per_s']:.1f} ratings/s; per request p50 {a['request_p50_ms']:.1f} ms")
    print(f"ratio: {figures['concurrent_vs_alone']:.2f}x the ratings/s of one rater alone, with {c['raters']} concurrent raters")
    print(f"({figures['cpu_count']} CPUs, 1-minute load average {figures['load_average_1min']:.1f} at the end)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

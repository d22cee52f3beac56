"""The quick demo's report.html in a real browser: Debian chromium driven by Playwright.

No skip when chromium is missing: CI installs it (.ci/run), and a browser test that silently
does not run is a test that cannot fail.
"""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
SECTIONS = ["Headline", "Baseline, RWR, DDPO, reward backpropagation and best-of-n on seen and unseen prompts", "Learned reward vs CLIP score",
            "Before and after: the same prompt and seed", "Training curves", "Reward hacking",
            "Round 2: rating the fine-tuned model's images", "Rater agreement", "Provenance"]


def test_demo_report_renders_offline_without_errors_or_broken_images(quick_demo, tmp_path):
    report = quick_demo / "report.html"
    assert report.is_file(), f"the quick demo wrote no {report}"
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page()
        errors, requests = [], []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        page.screenshot(path=str(tmp_path / "demo_report.png"), full_page=True)
        images = page.evaluate("[...document.images].map(i => ({alt: i.alt, ok: i.complete && i.naturalWidth > 0}))")
        headings = page.evaluate("[...document.querySelectorAll('h2')].map(h => h.textContent)")
        summary_rows = page.locator("h2:text-is('Baseline, RWR, DDPO, reward backpropagation and best-of-n on seen and unseen prompts') ~ table").first.locator("tr")
        models = [summary_rows.nth(i).locator("td").first.text_content() for i in range(1, summary_rows.count())]
        browser.close()
    assert errors == []
    assert [i["alt"] for i in images if not i["ok"]] == []
    assert len(images) >= 4 * 8  # before/after grid alone shows four images a prompt
    assert all(url.startswith(("file:", "data:")) for url in requests)  # offline: nothing fetched from a network
    assert [h for h in headings if h in SECTIONS] == SECTIONS  # all there, in reading order
    assert models == ["Baseline", "DDPO", "DDPO − baseline", "RWR", "RWR − baseline", "Reward backprop",
                      "Reward backprop − baseline", "DDPO, oracle reward", "DDPO, oracle reward − baseline",
                      "RWR, oracle reward", "RWR, oracle reward − baseline", "Best-of-n", "Best-of-n − baseline"]

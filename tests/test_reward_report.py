"""`t2i-align report`: one self-contained HTML file that renders in headless chromium without errors."""

from __future__ import annotations

import re

import pytest
from conftest import CHROMIUM

from align.cli import main
from reward_helpers import rated_labels, trained_model

SECTIONS = ["ROC curves on held-out prompts", "Learned reward against CLIP score", "Accuracy per prompt category",
            "Where reward and CLIP score disagree most", "Effect of the auxiliary task", "Data", "How to read this"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "reward-data"
    labels = rated_labels(root)
    model_dir = trained_model(root, labels)
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", "--reward-model", str(model_dir), "--labels", str(labels), "--out", str(out)]) == 0
    return out


def test_report_is_self_contained(report):
    page = report.read_text()
    for section in SECTIONS:
        assert f"<h2>{section}</h2>" in page, section
    sources = re.findall(r"""(?:src|href)=['"]([^'"]+)""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "<script" not in page


def test_report_renders_in_chromium_without_errors(report):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM),
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        requests = []
        page.on("request", lambda request: requests.append(request.url))
        page.goto(report.as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)")
        count = page.evaluate("document.images.length")
        browser.close()
    assert errors == [] and broken == []
    assert count >= 5  # ROC, scatter, category bars and disagreement thumbnails
    assert all(url.startswith(("file:", "data:")) for url in requests)


def test_pools_add_best_of_n_curves_and_a_single_image_pool_is_refused(report, tmp_path, capsys):
    root = report.parents[1] / "reward-data"
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("two red circles on a black background\nthree diamonds\n")  # a seen and an unseen prompt
    pool = tmp_path / "pool"
    assert main(["generate", "--out", str(pool), f"prompts={prompts}", "images_per_prompt=3", "sampling.steps=4"]) == 0
    out = tmp_path / "report.html"
    argv = ["report", "--reward-model", str(root / "reward"), "--labels", str(root / "labels.parquet"), "--out", str(out)]
    assert main([*argv, "--pool", str(pool)]) == 0
    page = out.read_text()
    section = page[page.index("<h2>Best-of-n: picking"):]
    for split in ("seen prompts (1 prompts, 3+ images each)", "unseen prompts (1 prompts, 3+ images each)"):
        assert split in section
    assert "<th>n = 3</th>" in section and "<th>n = 4</th>" not in section

    single = tmp_path / "single"
    assert main(["generate", "--out", str(single), f"prompts={prompts}", "images_per_prompt=1", "sampling.steps=4"]) == 0
    assert main([*argv, "--overwrite", "--pool", str(single)]) == 2
    assert "prompts with a single image; best-of-n needs several" in capsys.readouterr().err

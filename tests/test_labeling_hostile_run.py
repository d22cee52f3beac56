"""A run directory that works against the app, through a real `t2i-align label` server: images at the
run's root beside files that must stay private, a category that breaks Markdown tables, and images
whose headers claim a huge size, present at start or swapped in while raters rate.
"""

from __future__ import annotations

import sqlite3

import httpx
import pandas as pd
import pytest
from conftest import ADMIN, ADMIN_PASSWORD, RATER_PASSWORD, LabelServer, add_rater, make_run_dir
from test_labeling_image_fuzz import png_claiming

from labeling_app.http_client import RatingClient

SPOOFING_CATEGORY = "count | 99 | 100.0%"


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory):
    """8 samples whose images sit at the run's root; sample 000003 claims 30000 x 30000 pixels from the
    start; every category holds `|`; a secret file beside them."""
    root = tmp_path_factory.mktemp("hostile")
    run = make_run_dir(root, 8)
    samples = pd.read_parquet(run / "samples.parquet")
    for image in (run / "images").iterdir():
        image.rename(run / image.name)
    (run / "images").rmdir()
    samples["image_path"] = samples["id"] + ".png"
    samples["category"] = SPOOFING_CATEGORY
    samples.to_parquet(run / "samples.parquet", index=False)
    (run / "000003.png").write_bytes(png_claiming(30000, 30000))
    (run / "secret.txt").write_text("not for raters")
    accounts = root / "raters.db"
    add_rater(accounts, ADMIN, ADMIN_PASSWORD, admin=True)
    add_rater(accounts, "bob")
    server = LabelServer(run, accounts, root / "server.log").start()
    yield server
    server.stop()


def test_a_huge_image_at_start_is_left_out_and_the_server_serves(hostile_server):
    """It used to stop `label` at start with Pillow's DecompressionBombError traceback (exit 1)."""
    log = hostile_server.log.read_text()
    assert "sample 000003 is left out: image file 000003.png claims too many pixels" in log
    assert "Traceback" not in log


def test_only_the_images_named_in_samples_parquet_are_served_from_the_run_root(hostile_server):
    """The attack: with images at the run's root, the whole folder was servable to raters:
    samples.parquet, config.yaml, labels.db, any secret beside them."""
    run = hostile_server.run
    with httpx.Client(base_url=hostile_server.url) as bob:
        assert bob.post("/login", data={"username": "bob", "password": RATER_PASSWORD}).status_code == 200
        assert bob.get(f"/gradio_api/file={run / '000000.png'}").status_code == 200
        for name in ("secret.txt", "samples.parquet", "config.yaml", "labels.db", "labels.db-wal"):
            for route in ("/gradio_api/file=", "/gradio_api/file/"):
                assert bob.get(f"{route}{run / name}").status_code in (403, 404), (route, name)


def test_an_image_swapped_for_a_huge_one_while_serving_is_left_out_and_the_rater_goes_on(hostile_server):
    """The attack: swap a preloaded image, then the one on screen, for a 1.5 KB file claiming 30000 x 30000
    pixels. It used to give raw errors on every click and on reload, commit a rating never acknowledged,
    and leave the rater stuck."""
    run = hostile_server.run
    bob = RatingClient(hostile_server.url, "bob", RATER_PASSWORD)
    assert bob.start()["showing"] == "000000"  # 000001 preloaded
    (run / "000001.png").write_bytes(png_claiming(30000, 30000))
    saved = bob.thumbs_up()
    assert (saved["outcome"], saved["sample_id"], saved["showing"]) == ("saved", "000000", "000002")
    (run / "000002.png").write_bytes(png_claiming(30000, 30000))  # the one on screen
    refused = bob.thumbs_up()
    assert (refused["outcome"], refused["sample_id"], refused["showing"]) == ("refused", "000002", "000004")
    assert bob.thumbs_up()["outcome"] == "saved"
    with sqlite3.connect(run / "labels.db") as db:
        assert db.execute("SELECT sample_id FROM ratings ORDER BY id").fetchall() == [("000000",), ("000004",)]
        broken = dict(db.execute("SELECT id, broken FROM samples WHERE broken IS NOT NULL"))
    assert set(broken) == {"000001", "000002", "000003"}
    assert bob.start()["outcome"] == "started"  # a reload works
    bob.close()


def test_stored_text_cannot_split_a_row_of_the_admin_s_tables(hostile_server):
    """The attack: a category holding `|` split its row of the admin's Markdown table and spoofed its
    figures (here: 99 ratings, 100% up)."""
    admin = RatingClient(hostile_server.url, ADMIN, ADMIN_PASSWORD)
    assert admin.start()["showing"] is not None
    assert admin.thumbs_down()["outcome"] == "saved"
    summary = admin.admin_summary()
    rows = [line for line in summary.splitlines() if SPOOFING_CATEGORY.replace("|", "\\|") in line]
    assert len(rows) == 1 and _cells(rows[0]) == 3, summary  # category, ratings, thumbs up
    admin.close()


def _cells(row: str) -> int:
    """The cells of a Markdown table row, as a renderer counts them (an escaped `\\|` is no border)."""
    return row.replace("\\|", "").strip().strip("|").count("|") + 1

"""20 raters at once through the real HTTP interface: exact counts, no pair twice, overlap never exceeded."""

from __future__ import annotations

import sqlite3
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from conftest import RATER_PASSWORD, LabelServer, add_rater, make_run_dir

from labeling_app.http_client import RatingClient

RATERS = [f"rater{i:02d}" for i in range(20)]
SAMPLES, OVERLAP = 60, 3
# Bounded by clicks, not seconds: a rater can rate each sample once, so more clicks than samples means
# the app keeps showing something it will not take.
MAX_CLICKS = SAMPLES + 10


def rate_until_done(url: str, name: str) -> tuple[list[dict], bool]:
    client = RatingClient(url, name, RATER_PASSWORD)
    receipts, finished = [], False
    receipt = client.start()
    for _ in range(MAX_CLICKS):
        if receipt["showing"] is None:
            finished = True
            break
        receipt = client.thumbs_up() if len(receipts) % 2 else client.thumbs_down()
        receipts.append(receipt)
    client.close()
    return [r for r in receipts if r["outcome"] == "saved"], finished


def test_twenty_concurrent_raters(tmp_path):
    run = make_run_dir(tmp_path, SAMPLES)
    accounts = tmp_path / "raters.db"
    for name in RATERS:
        add_rater(accounts, name)
    server = LabelServer(run, accounts, tmp_path / "server.log", overlap=OVERLAP).start()
    try:
        with ThreadPoolExecutor(len(RATERS)) as pool:
            results = list(pool.map(lambda name: rate_until_done(server.url, name), RATERS))
    finally:
        server.stop()

    saved = {name: receipts for name, (receipts, _) in zip(RATERS, results)}
    db = sqlite3.connect(run / "labels.db")
    rows = db.execute("SELECT id, rater, sample_id FROM ratings WHERE undone_at IS NULL").fetchall()
    assert len(rows) == sum(len(r) for r in saved.values())
    assert sorted(r[0] for r in rows) == sorted(x["rating_id"] for rs in saved.values() for x in rs)
    for name, receipts in saved.items():
        assert Counter(rater for _, rater, _ in rows)[name] == len(receipts), name
    pairs = [(rater, sample) for _, rater, sample in rows]
    assert len(pairs) == len(set(pairs)), "a rater rated a sample twice"
    per_sample = Counter(sample for _, _, sample in rows)
    assert max(per_sample.values()) <= OVERLAP
    assert all(finished for _, finished in results), f"raters still shown samples after {MAX_CLICKS} clicks"
    assert len(per_sample) == SAMPLES and set(per_sample.values()) == {OVERLAP}  # the pool was used up exactly
    assert len({name for name, receipts in saved.items() if receipts}) > 1  # the work really was shared

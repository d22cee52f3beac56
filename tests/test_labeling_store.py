"""The label store on a real SQLite file: assignment, overlap, leases, skips, undo."""

from __future__ import annotations

import threading

import pytest
from conftest import make_run_dir

from labeling_app.run_dir import read_samples
from labeling_app.store import LabelStore, RatingRefused, open_run_store


def test_each_sample_gets_overlap_distinct_raters_and_no_rater_sees_one_twice(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 5), overlap=2)
    seen: dict[str, list[str]] = {r: [] for r in ("ann", "bea", "cid")}
    for _ in range(10):
        for rater in seen:
            sample_id = store.next_sample(rater)
            if sample_id is not None:
                seen[rater].append(sample_id)
                store.rate(rater, sample_id, 1)
    for rater, ids in seen.items():
        assert len(ids) == len(set(ids)), rater
    per_sample = {}
    for row in store.live_ratings():
        per_sample.setdefault(row["sample_id"], []).append(row["rater"])
    assert sorted(per_sample) == store.sample_ids()
    assert all(len(raters) == 2 for raters in per_sample.values())
    assert store.progress("ann").remaining == 0
    assert all(store.next_sample(r) is None for r in seen)


def test_a_leased_last_slot_is_not_handed_to_another_rater_until_the_lease_expires(tmp_path):
    now = [1_000.0]
    store = LabelStore(make_run_dir(tmp_path, 1), overlap=1, lease_seconds=300, clock=lambda: now[0])
    store.sync_samples(read_samples(store.run_dir), {})
    assert store.next_sample("ann") == "000000"
    now[0] += 299
    assert store.next_sample("bea") is None
    now[0] += 2
    assert store.next_sample("bea") == "000000"


def test_a_full_sample_refuses_more_ratings(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 1), overlap=1)
    store.rate("ann", "000000", 1)
    with pytest.raises(RatingRefused, match="already has"):
        store.rate("bea", "000000", 0)
    with pytest.raises(RatingRefused, match="already rated"):
        store.rate("ann", "000000", 0)
    assert len(store.live_ratings()) == 1


def test_a_sample_leased_to_another_rater_is_not_theirs_to_rate(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 1), overlap=1)
    assert store.next_sample("ann") == "000000"
    with pytest.raises(RatingRefused, match="being rated by another rater"):
        store.rate("bea", "000000", 0)
    assert store.rate("ann", "000000", 1).label == 1


def test_racing_raters_never_exceed_the_overlap(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 1), overlap=2)
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def rate(rater: str) -> None:
        barrier.wait()
        try:
            store.rate(rater, "000000", 1)
            outcomes.append("saved")
        except RatingRefused:
            outcomes.append("refused")

    threads = [threading.Thread(target=rate, args=(f"r{i}",)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["refused"] * 6 + ["saved"] * 2
    assert len(store.live_ratings()) == 2


def test_a_skipped_sample_goes_back_to_the_pool_for_others_only(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 2), overlap=1)
    first = store.next_sample("ann")
    store.skip("ann", first)
    assert store.next_sample("ann") != first
    assert store.next_sample("bea") == first


def test_undo_retracts_only_the_raters_own_latest_rating_and_hands_the_sample_back(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 3), overlap=2)
    store.rate("ann", "000000", 1)
    store.rate("ann", "000001", 0, ["wrong count"])
    store.rate("bea", "000002", 1)
    undone = store.undo_last("ann")
    assert (undone.sample_id, undone.label, undone.reasons) == ("000001", 0, ("wrong count",))
    assert [(r["rater"], r["sample_id"]) for r in store.live_ratings()] == [("ann", "000000"), ("bea", "000002")]
    store.rate("ann", "000001", 1)  # rated again after the undo
    assert store.progress("ann").mine_today == 2
    assert store.undo_last("cid") is None


def test_reasons_are_checked(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 1))
    with pytest.raises(Exception, match="unknown reason tag"):
        store.rate("ann", "000000", 0, ["too blurry"])
    with pytest.raises(Exception, match="thumbs down"):
        store.rate("ann", "000000", 1, ["wrong count"])
    assert store.live_ratings() == []


def test_ratings_survive_reopening_and_the_overlap_is_remembered(tmp_path):
    run = make_run_dir(tmp_path, 2)
    open_run_store(run, overlap=3).rate("ann", "000000", 1)
    reopened = LabelStore(run)
    assert reopened.overlap == 3
    assert [r["sample_id"] for r in reopened.live_ratings()] == ["000000"]
    assert reopened._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_undo_cannot_lease_past_the_cap(tmp_path):
    """The attack: rate many samples, then undo them all. Each undo leased its sample back without the
    cap, and a rater came to hold 62 leases with --max-leases 4."""
    store = open_run_store(make_run_dir(tmp_path, 14), max_leases=4)
    for _ in range(12):
        store.rate("bob", store.next_sample("bob"), 1)
    for _ in range(12):
        assert store.undo_last("bob") is not None
        (held,) = store._db().execute("SELECT COUNT(*) FROM leases WHERE rater = 'bob'").fetchone()
        assert held <= 4

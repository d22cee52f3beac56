"""Every rating the app acknowledged survives a SIGKILL of the server, and none is stored twice."""

from __future__ import annotations

import sqlite3
import threading

from conftest import RATER_PASSWORD, LabelServer, add_rater, make_run_dir

from labeling_app.http_client import RatingClient

RATERS = [f"r{i}" for i in range(4)]


def rate_until_the_server_dies(url: str, name: str, acknowledged: list, changed: threading.Condition) -> None:
    try:
        client = RatingClient(url, name, RATER_PASSWORD, timeout=15)
        client.start()
        for i in range(10_000):
            receipt = client.thumbs_up() if i % 3 else client.thumbs_down(["wrong count"])
            if receipt["outcome"] == "saved":
                with changed:
                    acknowledged.append((receipt["rating_id"], name, receipt["sample_id"], receipt["label"]))
                    changed.notify_all()
    except Exception:  # the server was killed under us: what matters is what was acknowledged before
        return
    finally:
        with changed:
            changed.notify_all()  # a rater that stopped wakes the test too


def test_acknowledged_ratings_survive_sigkill_mid_stream(tmp_path):
    run = make_run_dir(tmp_path, 300)
    accounts = tmp_path / "raters.db"
    for name in RATERS:
        add_rater(accounts, name)
    server = LabelServer(run, accounts, tmp_path / "server.log").start()
    acknowledged: list[tuple[int, str, str, int]] = []
    changed = threading.Condition()
    threads = [threading.Thread(target=rate_until_the_server_dies, args=(server.url, n, acknowledged, changed), daemon=True)
               for n in RATERS]
    try:
        for thread in threads:
            thread.start()
        with changed:  # no deadline: the raters either get 40 ratings acknowledged or all stop
            changed.wait_for(lambda: len(acknowledged) >= 40 or not any(t.is_alive() for t in threads))
        assert len(acknowledged) >= 40, f"the raters stopped after {len(acknowledged)} acknowledged ratings"
        server.kill()  # mid-stream: clients have requests in flight
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads)

        server.start()  # same run, same port, after the crash
        db = sqlite3.connect(run / "labels.db")
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        stored = {row[0]: row[1:] for row in db.execute(
            "SELECT id, rater, sample_id, label FROM ratings WHERE undone_at IS NULL")}
        for rating_id, name, sample_id, label in acknowledged:
            assert stored.get(rating_id) == (name, sample_id, label), f"acknowledged rating {rating_id} lost"
        pairs = [(rater, sample) for rater, sample, _ in stored.values()]
        assert len(pairs) == len(set(pairs)), "a rater rated a sample twice"
        samples = [sample for _, sample, _ in stored.values()]
        assert len(samples) == len(set(samples)), "a sample got more ratings than the overlap of 1"

        # The restarted server carries on where it stopped.
        client = RatingClient(server.url, RATERS[0], RATER_PASSWORD)
        client.start()
        receipt = client.thumbs_up()
        assert receipt["outcome"] == "saved" and receipt["rating_id"] > max(stored)
        assert receipt["sample_id"] not in samples
        client.close()
    finally:
        server.stop()

"""Who may do what over HTTP: login on every route, raters touch only their own ratings, only admins export."""

from __future__ import annotations

import sqlite3
import stat
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import ADMIN, ADMIN_PASSWORD, RATER_PASSWORD, LabelServer, add_rater, make_run_dir
from gradio_client.exceptions import AppError

from labeling_app.http_client import RatingClient


@contextmanager
def serving(tmp_path: Path, samples: int, *raters: str, **options):
    """`t2i-align label` over a fresh run of `samples` images, with these raters (ada is the admin)."""
    run = make_run_dir(tmp_path, samples)
    accounts = tmp_path / "raters.db"
    for name in raters:
        add_rater(accounts, name, ADMIN_PASSWORD if name == ADMIN else RATER_PASSWORD, admin=name == ADMIN)
    server = LabelServer(run, accounts, tmp_path / "server.log", **options).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def labeling_access_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("access")
    run = make_run_dir(root, 8)
    accounts = root / "raters.db"
    add_rater(accounts, ADMIN, ADMIN_PASSWORD, admin=True)
    add_rater(accounts, "bob")
    add_rater(accounts, "cy")
    server = LabelServer(run, accounts, root / "server.log", overlap=2).start()
    yield server
    server.stop()


def test_every_app_route_wants_a_login(labeling_access_server):
    url = labeling_access_server.url
    image = labeling_access_server.run / "images" / "000000.png"
    with httpx.Client(base_url=url) as anonymous:
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={image}", "/gradio_api/queue/data"):
            assert anonymous.get(path).status_code in (401, 403), path
        for path in ("/gradio_api/queue/join", "/gradio_api/run/thumbs_up", "/gradio_api/call/thumbs_up"):
            assert anonymous.post(path, json={"data": [], "fn_index": 1}).status_code in (401, 403), path
        assert anonymous.post("/login", data={"username": "bob", "password": "wrong"}).status_code == 400
        assert anonymous.post("/login", data={"username": "bob", "password": RATER_PASSWORD}).status_code == 200
        assert anonymous.get(f"/gradio_api/file={image}").status_code == 200  # now logged in


def test_raters_change_only_their_own_ratings_and_only_admins_export(labeling_access_server):
    server = labeling_access_server
    admin = RatingClient(server.url, ADMIN, ADMIN_PASSWORD)
    bob = RatingClient(server.url, "bob", RATER_PASSWORD)
    admin.start()
    first = admin.thumbs_up()
    assert first["outcome"] == "saved"

    bob.start()
    assert bob.undo()["outcome"] == "nothing to undo"  # ada's rating is not bob's to take back
    mine = bob.thumbs_down(["wrong count"])
    assert mine["outcome"] == "saved"

    with pytest.raises(AppError, match="Only admins"):
        bob.admin_export()
    with pytest.raises(AppError, match="Only admins"):
        bob.admin_summary()

    summary = admin.admin_summary()
    assert "| ada | human | 1 | 100.0% |" in summary and "| bob | human | 1 | 0.0% |" in summary
    assert "Pairwise" in summary or "pairwise" in summary
    exported = admin.admin_export()
    with httpx.Client() as anonymous:
        assert anonymous.get(exported["url"]).status_code in (401, 403)
    frame = pd.read_parquet(exported["path"])
    assert sorted(zip(frame["rater"], frame["label"])) == [("ada", 1), ("bob", 0)]
    admin.close()
    bob.close()


def test_an_image_that_goes_bad_while_serving_is_left_out_and_logged(labeling_access_server):
    server = labeling_access_server
    (server.run / "images" / "000007.png").write_bytes(b"truncated")
    cy = RatingClient(server.url, "cy", RATER_PASSWORD)
    shown = [cy.start()["showing"]]
    while shown[-1] is not None:
        shown.append(cy.thumbs_up()["showing"])
    cy.close()
    assert "000007" not in shown and "000006" in shown
    assert "sample 000007 is left out: image file images/000007.png is not a readable image" in server.log.read_text()


def test_undo_on_the_last_sample_keeps_it_leased_to_the_rater(tmp_path):
    """The attack on the lease: with nothing preloaded, an undo used to release every lease of the
    rater, so the sample back on bob's screen went to alice and bob's own re-rating was refused."""
    with serving(tmp_path, 1, "bob", "alice") as server:
        bob, alice = RatingClient(server.url, "bob", RATER_PASSWORD), RatingClient(server.url, "alice", RATER_PASSWORD)
        assert bob.start()["showing"] == "000000"
        assert bob.thumbs_up()["outcome"] == "saved"
        undone = bob.undo()
        assert undone["outcome"] == "undone" and undone["showing"] == "000000"
        assert alice.start()["showing"] is None  # still bob's to rate again
        assert bob.thumbs_down(["wrong count"])["outcome"] == "saved"
        bob.close()
        alice.close()


def test_a_rater_cannot_hoard_the_run_with_fresh_sessions(tmp_path):
    """The attack: skip from many fresh sessions, each leasing two samples, until nothing is left
    for anyone else. A rater now holds at most --max-leases (4) samples; each new lease releases
    their oldest."""
    with serving(tmp_path, 30, "bob", "alice") as server:
        for _ in range(20):  # 40 leases asked for, more than the run has samples
            hoarder = RatingClient(server.url, "bob", RATER_PASSWORD)
            hoarder.skip()
            hoarder.close()
        with sqlite3.connect(server.run / "labels.db") as db:
            (held,) = db.execute("SELECT COUNT(*) FROM leases WHERE rater = 'bob'").fetchone()
        assert held <= 4
        alice = RatingClient(server.url, "alice", RATER_PASSWORD)
        assert alice.start()["showing"] is not None
        alice.close()


def test_a_rater_who_learns_another_s_session_hash_cannot_rate_on_their_screen(tmp_path):
    """The attack: alice sends her requests with bob's session hash. They used to rate bob's leased
    sample under alice's name; now they are refused and bob's session is left as it was."""
    with serving(tmp_path, 4, "bob", "alice") as server:
        bob, alice = RatingClient(server.url, "bob", RATER_PASSWORD), RatingClient(server.url, "alice", RATER_PASSWORD)
        assert bob.start()["showing"] == "000000"
        alice.client.session_hash = bob.client.session_hash
        for attack in (alice.thumbs_up, alice.skip, alice.undo):
            with pytest.raises(AppError, match="belongs to another rater"):
                attack()
        with sqlite3.connect(server.run / "labels.db") as db:
            assert db.execute("SELECT COUNT(*) FROM ratings").fetchone() == (0,)
            assert db.execute("SELECT COUNT(*) FROM skips").fetchone() == (0,)
        saved = bob.thumbs_up()
        assert (saved["outcome"], saved["sample_id"]) == ("saved", "000000")
        bob.close()
        alice.close()


def test_concurrent_exports_each_get_a_whole_private_file_removed_when_the_server_stops(tmp_path):
    """The attack: many exports at once. They used to share one file per server (some failed, some
    served a half-written parquet), left world-readable in Gradio's temp folder after exit."""
    with serving(tmp_path, 6, ADMIN) as server:
        admin = RatingClient(server.url, ADMIN, ADMIN_PASSWORD)
        admin.start()
        for _ in range(3):
            admin.thumbs_up()
        clients = [RatingClient(server.url, ADMIN, ADMIN_PASSWORD) for _ in range(12)]
        with ThreadPoolExecutor(len(clients)) as pool:
            exported = list(pool.map(lambda client: client.admin_export(), clients))
        paths = [Path(e["path"]) for e in exported]  # Gradio's copies: one per distinct content
        for path in paths:
            assert len(pd.read_parquet(path)) == 3
            private = next(p for p in path.parents if p.name.startswith("t2i-align-label-"))
            assert stat.S_IMODE(private.stat().st_mode) == 0o700  # nobody but the server's user can reach it
        for client in [admin, *clients]:
            client.close()
    assert not any(path.exists() for path in paths)


def test_sessions_end_when_the_account_is_removed_demoted_or_its_password_changes(tmp_path):
    """The attack: keep using a logged-in session after the admin took the account away."""
    def raters(*argv: str, password: str | None = None) -> None:
        subprocess.run([sys.executable, "-m", "align.cli", "raters", "--accounts", str(tmp_path / "raters.db"), *argv],
                       input=password, text=True, check=True, capture_output=True)

    with serving(tmp_path, 6, "bob", "carol", ADMIN) as server:
        bob, carol = RatingClient(server.url, "bob", RATER_PASSWORD), RatingClient(server.url, "carol", RATER_PASSWORD)
        admin = RatingClient(server.url, ADMIN, ADMIN_PASSWORD)
        assert bob.start()["showing"] and carol.start()["showing"] and admin.admin_summary()
        raters("remove", "bob")
        raters("set-password", "carol", "--password-stdin", password="a-new-password-2\n")
        raters("set-admin", ADMIN, "--off")
        for ended in (bob.thumbs_up, carol.thumbs_up, admin.admin_summary):
            with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
                ended()
        with sqlite3.connect(server.run / "labels.db") as db:
            assert db.execute("SELECT COUNT(*) FROM ratings").fetchone() == (0,)
        assert "session of bob ended: account removed or changed" in (tmp_path / "server.log").read_text()
        fresh = RatingClient(server.url, "carol", "a-new-password-2")  # the new password works
        assert fresh.start()["showing"]


def test_a_session_ends_after_the_idle_time(tmp_path):
    with serving(tmp_path, 4, "bob", idle_minutes=0.02) as server:  # 1.2 s
        bob = RatingClient(server.url, "bob", RATER_PASSWORD)
        assert bob.start()["showing"]
        time.sleep(2)
        with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
            bob.thumbs_up()
        assert "session of bob ended: idle too long" in (tmp_path / "server.log").read_text()

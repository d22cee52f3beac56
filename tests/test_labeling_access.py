"""Who may do what over HTTP: login on every route, raters touch only their own ratings, only admins export.

Each test here performs its attack through a real `t2i-align label` server. Three servers serve
them all (a start costs seconds): one with default options, one with tight login limits, one with
a short idle time. Before each test its server's run has no ratings, skips or leases, and its
accounts are exactly the test's own. The rating rules themselves, without a server:
test_labeling_rules.py.
"""

from __future__ import annotations

import sqlite3
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest
from conftest import ADMIN, ADMIN_PASSWORD, RATER_PASSWORD, LabelServer, add_rater, make_run_dir, read_only
from gradio_client.exceptions import AppError

from labeling_app.accounts import Accounts
from labeling_app.http_client import RatingClient


def add_raters(accounts: Path, *raters: str) -> None:
    """These raters, with the test passwords (ada is the admin)."""
    for name in raters:
        add_rater(accounts, name, ADMIN_PASSWORD if name == ADMIN else RATER_PASSWORD, admin=name == ADMIN)


@contextmanager
def serving(tmp_path: Path, samples: int, *raters: str, **options):
    """`t2i-align label` over a fresh run of `samples` images, with these raters (ada is the admin);
    `options` go to LabelServer (overlap, idle_minutes, extra_args, ...)."""
    run = make_run_dir(tmp_path, samples)
    accounts = tmp_path / "raters.db"
    add_raters(accounts, *raters)
    server = LabelServer(run, accounts, tmp_path / "server.log", **options).start()
    try:
        yield server
    finally:
        server.stop()


class SharedServer:
    """One `t2i-align label` for several tests. `fresh(*raters)` readies it for the next test: the
    run without ratings, skips or leases (rating ids from 1 again), exactly these accounts (the
    sessions of earlier tests end with theirs), and `log_text()` from that moment on. A test that
    stops the server gets it started again by the next `fresh`.

    What it cannot clear is the login limits' memory of failed logins: a test that fails logins
    does so under names and from loopback addresses no other test on the same server uses."""

    def __init__(self, root: Path, samples: int, **options):
        self.run = make_run_dir(root, samples)
        self.accounts = root / "raters.db"
        self.server = LabelServer(self.run, self.accounts, root / "server.log", **options)
        self.log_offset = 0

    def fresh(self, *raters: str) -> LabelServer:
        accounts = Accounts(self.accounts)
        for rater in accounts.list():
            accounts.remove(rater.name)
        add_raters(self.accounts, *raters)
        if self.server.process is None or self.server.process.poll() is not None:
            self.server.start()
        with closing(sqlite3.connect(self.run / "labels.db")) as db, db:
            for table in ("ratings", "skips", "leases", "sqlite_sequence"):
                db.execute(f"DELETE FROM {table}")
            db.execute("UPDATE samples SET broken = NULL")
        self.log_offset = self.server.log.stat().st_size
        return self.server

    def log_text(self) -> str:
        """The server's log since the last `fresh`."""
        with self.server.log.open() as log:
            log.seek(self.log_offset)
            return log.read()


@contextmanager
def shared(root: Path, samples: int, **options):
    server = SharedServer(root, samples, **options)
    try:
        yield server
    finally:
        server.server.stop()


@pytest.fixture(scope="module")
def labeling_shared_server(tmp_path_factory):
    """Default options: overlap 1, a run of 30 samples."""
    with shared(tmp_path_factory.mktemp("shared"), 30) as server:
        yield server


@pytest.fixture(scope="module")
def labeling_limits_server(tmp_path_factory):
    """At most 3 failed logins per account and 5 per address; overlap 2, so that raters share samples."""
    limits = ("--failed-logins-per-account", "3", "--failed-logins-per-address", "5")
    with shared(tmp_path_factory.mktemp("limits"), 8, overlap=2, extra_args=limits) as server:
        yield server


@pytest.fixture(scope="module")
def labeling_idle_server(tmp_path_factory):
    """Sessions end after 3 s without a request; 50 failed logins per account and per address; 127.0.0.9 is
    a trusted proxy (its X-Forwarded-For names the client)."""
    limits = ("--failed-logins-per-account", "50", "--failed-logins-per-address", "50", "--trusted-proxy", "127.0.0.9")
    with shared(tmp_path_factory.mktemp("idle"), 4, idle_minutes=0.05, extra_args=limits) as server:
        yield server


def test_every_app_route_wants_a_login(labeling_shared_server):
    server = labeling_shared_server.fresh("bob")
    url = server.url
    image = server.run / "images" / "000000.png"
    with httpx.Client(base_url=url) as anonymous:
        for path in ("/config", "/gradio_api/info", f"/gradio_api/file={image}", "/gradio_api/queue/data"):
            assert anonymous.get(path).status_code in (401, 403), path
        for path in ("/gradio_api/queue/join", "/gradio_api/run/thumbs_up", "/gradio_api/call/thumbs_up"):
            assert anonymous.post(path, json={"data": [], "fn_index": 1}).status_code in (401, 403), path
        assert anonymous.post("/login", data={"username": "bob", "password": "wrong"}).status_code == 400
        assert anonymous.post("/login", data={"username": "bob", "password": RATER_PASSWORD}).status_code == 200
        assert anonymous.get(f"/gradio_api/file={image}").status_code == 200  # now logged in


def test_raters_change_only_their_own_ratings_and_only_admins_export(labeling_limits_server):
    server = labeling_limits_server.fresh(ADMIN, "bob")
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


def test_a_rater_cannot_hoard_the_run_with_fresh_sessions(labeling_shared_server):
    """The attack: skip from many fresh sessions, each leasing two samples, until nothing is left
    for anyone else. A rater now holds at most --max-leases (4) samples; each new lease releases
    their oldest."""
    server = labeling_shared_server.fresh("bob", "alice")  # a run of 30 samples
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


def test_a_rater_who_learns_another_s_session_hash_can_neither_act_nor_listen_in_it(labeling_shared_server):
    """The attacks: alice sends her events with bob's session hash (they used to rate bob's leased
    sample under her name, and `start` overwrote bob's session), and reads an admin's event stream by
    its hash (it carried the path of the admin's export). Every request naming a page's hash, in its
    path, query or body, is refused to anyone but the user who opened the page."""
    server = labeling_shared_server.fresh("bob", "alice", ADMIN)
    bob, alice = RatingClient(server.url, "bob", RATER_PASSWORD), RatingClient(server.url, "alice", RATER_PASSWORD)
    assert bob.start()["showing"] == "000000"
    alice.client.session_hash = bob.client.session_hash
    for attack in (alice.start, alice.thumbs_up, alice.skip, alice.undo):
        with pytest.raises(httpx.HTTPStatusError, match="403 Forbidden"):
            attack()
    with sqlite3.connect(server.run / "labels.db") as db:
        assert db.execute("SELECT COUNT(*) FROM ratings").fetchone() == (0,)
        assert db.execute("SELECT COUNT(*) FROM skips").fetchone() == (0,)
    saved = bob.thumbs_up()
    assert (saved["outcome"], saved["sample_id"]) == ("saved", "000000")

    admin = RatingClient(server.url, ADMIN, ADMIN_PASSWORD)
    admin.admin_export()
    page = admin.client.session_hash
    with httpx.Client(base_url=server.url) as eve:
        assert eve.post("/login", data={"username": "alice", "password": RATER_PASSWORD}).status_code == 200
        for refused in (eve.get(f"/gradio_api/queue/data?session_hash={page}"), eve.get(f"/gradio_api/heartbeat/{page}"),
                        eve.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0, "session_hash": page})):
            assert refused.status_code == 403 and "belongs to another user" in refused.text
    for client in (bob, alice, admin):
        client.close()


def test_a_flood_of_fresh_pages_ends_only_the_flooder_s_own(labeling_shared_server):
    """The attack: a rater sends thousands of events from fresh session hashes. Each made a Gradio page
    state, and Gradio keeps 10,000 (least recently used first): another rater's state was evicted and
    their next thumbs up came back "nothing to rate", unsaved and unexplained. Now a rater keeps at
    most 16 pages; beyond that their own oldest ends, and a click on an ended page says why it was not
    saved."""
    server = labeling_shared_server.fresh("bob", "mallory")
    bob, mallory = RatingClient(server.url, "bob", RATER_PASSWORD), RatingClient(server.url, "mallory", RATER_PASSWORD)
    assert bob.start()["showing"] == "000000"
    first_page = mallory.client.session_hash
    assert mallory.start()["showing"]
    for i in range(20):
        mallory.client.session_hash = f"flood-{i}"
        mallory.skip()  # refused or not, every event names a page
    saved = bob.thumbs_up()
    assert (saved["outcome"], saved["sample_id"]) == ("saved", "000000")
    mallory.client.session_hash = first_page  # ended among mallory's own
    gone = mallory.thumbs_up()
    assert gone["outcome"] == "not saved"
    bob.close()
    mallory.close()


def test_one_rater_in_two_tabs_gets_every_click_saved(labeling_shared_server):
    """Each tab's start used to release the other tab's leases, so a share of that tab's clicks were
    refused. Now a tab leaves the others' samples alone."""
    server = labeling_shared_server.fresh("bob")
    tabs = [RatingClient(server.url, "bob", RATER_PASSWORD) for _ in range(2)]
    shown = [tab.start()["showing"] for tab in tabs]
    assert len(set(shown)) == 2
    receipts = [tab.thumbs_up() for _ in range(4) for tab in tabs]
    assert {r["outcome"] for r in receipts} == {"saved"}
    assert len({r["sample_id"] for r in receipts}) == 8
    for tab in tabs:
        tab.close()


def test_sessions_end_when_the_account_is_removed_demoted_or_its_password_changes(labeling_shared_server):
    """The attack: keep using a logged-in session after the admin took the account away (with the
    calls `t2i-align raters remove / set-password / set-admin --off` make; the command itself:
    test_labeling_accounts)."""
    server = labeling_shared_server.fresh("bob", "carol", ADMIN)
    accounts = Accounts(server.accounts)
    bob, carol = RatingClient(server.url, "bob", RATER_PASSWORD), RatingClient(server.url, "carol", RATER_PASSWORD)
    admin = RatingClient(server.url, ADMIN, ADMIN_PASSWORD)
    assert bob.start()["showing"] and carol.start()["showing"] and admin.admin_summary()
    accounts.remove("bob")
    accounts.set_password("carol", "a-new-password-2")
    accounts.set_admin(ADMIN, False)
    for ended in (bob.thumbs_up, carol.thumbs_up, admin.admin_summary):
        with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
            ended()
    with sqlite3.connect(server.run / "labels.db") as db:
        assert db.execute("SELECT COUNT(*) FROM ratings").fetchone() == (0,)
    assert "session of bob ended: account removed or changed" in labeling_shared_server.log_text()
    fresh = RatingClient(server.url, "carol", "a-new-password-2")  # the new password works
    assert fresh.start()["showing"]


def test_a_session_ends_after_the_idle_time(labeling_idle_server):
    """Through the real server, so time has to pass: 3 s idle is ten times what login-then-start takes
    here; the sleep only has to exceed it. The rule itself, clock injected: test_labeling_accounts."""
    server = labeling_idle_server.fresh("bob")  # idle time 3 s
    bob = RatingClient(server.url, "bob", RATER_PASSWORD)
    assert bob.start()["showing"]
    time.sleep(4)
    with pytest.raises(httpx.HTTPStatusError, match="401 Unauthorized"):
        bob.thumbs_up()
    assert "session of bob ended: idle too long" in labeling_idle_server.log_text()


def log_in(name: str, password: str, address: str = "127.0.0.1", url: str = "") -> httpx.Response:
    """One login over HTTP from a chosen loopback address (all of 127.0.0.0/8 reaches the server)."""
    with httpx.Client(base_url=url, transport=httpx.HTTPTransport(local_address=address)) as client:
        return client.post("/login", data={"username": name, "password": password})


def test_failed_logins_are_limited_per_account_and_per_address_and_logged(labeling_limits_server):
    """The attack: guess passwords. After 3 failures for fay even her right password waits; after 5
    failures from one address every login from it waits, while another address still gets in.
    (Names and addresses of this test's own: the server's limits remember failures.)"""
    server = labeling_limits_server.fresh("fay", "gus")
    for _ in range(3):
        assert log_in("fay", "guess-guess", address="127.0.0.2", url=server.url).status_code == 400
    refused = log_in("fay", RATER_PASSWORD, address="127.0.0.2", url=server.url)
    assert refused.status_code == 429 and "too many failed logins for this account" in refused.text
    for name in ("carl", "dora"):  # no such accounts: failures count all the same
        assert log_in(name, "guess-guess", address="127.0.0.2", url=server.url).status_code == 400
    refused = log_in("gus", RATER_PASSWORD, address="127.0.0.2", url=server.url)
    assert refused.status_code == 429 and "from this address" in refused.text
    assert log_in("gus", RATER_PASSWORD, address="127.0.0.3", url=server.url).status_code == 200
    log = labeling_limits_server.log_text()
    assert log.count("failed login for 'fay' from 127.0.0.2") == 3 and "failed login for 'carl' from 127.0.0.2" in log


def test_parallel_guesses_cannot_slip_under_the_limit(labeling_limits_server):
    """The attack: send 12 guesses at once, so that all pass the check before any failure is counted.
    (From an address of this test's own, which has failed no login before: the account's limit of 3
    binds before the address's of 5.)"""
    server = labeling_limits_server.fresh("hal")
    with ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda _: log_in("hal", "guess-guess", address="127.0.0.4", url=server.url).status_code,
                              range(12)))
    assert codes.count(400) <= 3 and codes.count(429) == 12 - codes.count(400), codes


def test_a_forwarded_address_counts_only_from_a_trusted_proxy(labeling_idle_server):
    """The attack: fail logins from 127.0.0.1 with a new X-Forwarded-For header each time. uvicorn trusted
    that header from 127.0.0.1 by default, so each failure counted for a made-up address and 60 of them
    were never limited. Now no proxy is trusted unless named with --trusted-proxy (this server names
    127.0.0.9), and only from a named one is the forwarded address taken as the client's."""
    server = labeling_idle_server.fresh("kim")
    with httpx.Client(base_url=server.url) as client:  # from 127.0.0.1
        for i in range(3):
            answer = client.post("/login", data={"username": "kim", "password": "guess-guess"},
                                 headers={"X-Forwarded-For": f"203.0.113.{i}"})
            assert answer.status_code == 400
    with httpx.Client(base_url=server.url, transport=httpx.HTTPTransport(local_address="127.0.0.9")) as proxy:
        answer = proxy.post("/login", data={"username": "kim", "password": "guess-guess"},
                            headers={"X-Forwarded-For": "203.0.113.50"})
    assert answer.status_code == 400
    log = labeling_idle_server.log_text()
    assert log.count("failed login for 'kim' from 127.0.0.1") == 3 and "from 203.0.113.0" not in log
    assert "failed login for 'kim' from 203.0.113.50" in log


def test_right_passwords_sent_in_parallel_all_log_in(labeling_limits_server):
    """Each attempt used to count as a failure while its password was checked: 10 parallel logins with
    the right password got 2 refusals (429). Now only wrong passwords count; attempts wait their turn."""
    server = labeling_limits_server.fresh("jay")  # 3 failures per account
    with ThreadPoolExecutor(10) as pool:
        codes = list(pool.map(lambda _: log_in("jay", RATER_PASSWORD, address="127.0.0.7", url=server.url).status_code,
                              range(10)))
    assert codes == [200] * 10, codes


def test_a_failed_login_takes_as_long_for_an_unknown_name_as_for_a_known_one(labeling_idle_server):
    """The attack: tell which accounts exist by how fast a wrong password is answered. Without the
    dummy check an unknown name came back about 18 times faster (no scrypt); the bound of
    0.75 leaves room for a loaded machine and still fails on that leak."""
    server = labeling_idle_server.fresh("bob")  # 50 failed logins allowed per account and address
    with httpx.Client(base_url=server.url) as client:
        def median_seconds(name: str) -> float:
            times = []
            for _ in range(9):
                began = time.perf_counter()
                assert client.post("/login", data={"username": name, "password": "wrong-password"}).status_code == 400
                times.append(time.perf_counter() - began)
            return sorted(times)[4]

        known, unknown = median_seconds("bob"), median_seconds("nobody-by-this-name")
    assert unknown > 0.75 * known, (known, unknown)


def test_uploads_are_refused_and_exports_go_to_admins_only(labeling_shared_server):
    server = labeling_shared_server.fresh("bob", ADMIN)
    admin = RatingClient(server.url, ADMIN, ADMIN_PASSWORD)
    admin.start()
    admin.thumbs_up()
    exported = admin.admin_export()
    with httpx.Client(base_url=server.url) as bob:
        assert bob.post("/login", data={"username": "bob", "password": RATER_PASSWORD}).status_code == 200
        for path in ("/gradio_api/upload", "/gradio_api/upload/"):
            refused = bob.post(path, files={"files": ("big.bin", b"x" * 100_000)})
            assert refused.status_code == 403 and "accepts no uploads" in refused.text
        assert bob.get(exported["url"]).status_code == 403  # a rater who learns the export's URL
        alias = exported["url"].replace("/file=", "/file/")  # Gradio's deprecated spelling of the same route
        assert alias != exported["url"] and bob.get(alias).status_code == 403
        for path in ("samples.parquet", "config.yaml", "labels.db", "images/../samples.parquet"):
            for route in ("/gradio_api/file=", "/gradio_api/file/", "//gradio_api//file="):
                assert bob.get(f"{route}{server.run / path}").status_code in (403, 404), (route, path)
    with httpx.Client(base_url=server.url) as ada:
        assert ada.post("/login", data={"username": ADMIN, "password": ADMIN_PASSWORD}).status_code == 200
        assert ada.get(exported["url"]).status_code == 200
    admin.close()


def test_the_login_page_lists_no_endpoints_and_every_page_forbids_framing(labeling_shared_server):
    server = labeling_shared_server.fresh("bob")
    with httpx.Client(base_url=server.url) as anonymous:
        page = anonymous.get("/")
        assert page.status_code == 200
        for name in ("thumbs_up", "admin_export", "admin_summary", "undo"):
            assert name not in page.text, name
        for response in (page, anonymous.get("/config")):
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY"
    bob = RatingClient(server.url, "bob", RATER_PASSWORD)  # unlisted, the endpoints still answer their client
    assert bob.start()["showing"] == "000000"
    bob.close()


def test_ratings_while_the_run_dir_is_read_only_are_not_acknowledged_and_the_server_recovers(labeling_shared_server):
    """The attack of the disk: the run dir turns read-only while raters click. Each click gets a clear
    'not saved', nothing unsaved is acknowledged, and once it is writable again every click saves
    (before, connections opened while read-only kept failing until a restart)."""
    server = labeling_shared_server.fresh(*(f"r{i}" for i in range(4)))
    raters = [RatingClient(server.url, f"r{i}", RATER_PASSWORD) for i in range(4)]
    with ThreadPoolExecutor(len(raters)) as pool:
        assert all(r["showing"] for r in pool.map(lambda rater: rater.start(), raters))
        acknowledged = [r for r in pool.map(lambda rater: rater.thumbs_up(), raters) if r["outcome"] == "saved"]
        run = server.run
        with read_only(run / "labels.db", run / "labels.db-wal", run):
            during = [r for _ in range(3) for r in pool.map(lambda rater: rater.thumbs_up(), raters)]
        assert {r["outcome"] for r in during} == {"not saved"}
        after = [r for _ in range(3) for r in pool.map(lambda rater: rater.thumbs_up(), raters)]
        assert {r["outcome"] for r in after} == {"saved"}
        acknowledged += after
    for rater in raters:
        rater.close()
    with sqlite3.connect(run / "labels.db") as db:
        stored = set(db.execute("SELECT id FROM ratings").fetchall())
    assert stored == {(r["rating_id"],) for r in acknowledged}


def test_concurrent_exports_each_get_a_whole_private_file_removed_when_the_server_stops(labeling_shared_server):
    """The attack: many exports at once. They used to share one file per server (some failed, some
    served a half-written parquet), left world-readable in Gradio's temp folder after exit.
    Last in the file: it stops the shared server (a later test would start it again)."""
    server = labeling_shared_server.fresh(ADMIN)
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
    server.stop()
    assert not any(path.exists() for path in paths)

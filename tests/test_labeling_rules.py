"""The rating rules (labeling_app.rating_desk), called directly on a real SQLite store: no server.

What a click does, what the screen shows after it (the HTML exactly as the app sends it) and the
receipt API clients get. The HTTP wiring, logins and the attacks through it: test_labeling_access.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_run_dir, read_only, write_run_dir
from PIL import Image

from labeling_app.rating_desk import RatingDesk, RequestRefused, Screen
from labeling_app.run_dir import read_samples
from labeling_app.store import LabelStore, open_run_store

DESK_LOG = "labeling_app.rating_desk"


def open_desk(tmp_path: Path, samples: int, **store_options) -> RatingDesk:
    """A desk over a fresh run of `samples` coloured squares (red, blue, green, red, ...)."""
    return RatingDesk(open_run_store(make_run_dir(tmp_path, samples), **store_options))


class Tab:
    """One open page of a rater at the desk. Each call names the sample on its screen, as the browser does."""

    def __init__(self, desk: RatingDesk, rater: str, page: str | None = None):
        self.desk, self.rater, self.page = desk, rater, page or f"{rater}-page"
        self.screen: Screen | None = None

    @property
    def shown(self) -> str | None:
        return self.screen.session["current"] if self.screen else None

    def start(self) -> Screen:
        self.screen = self.desk.start(self.rater, self.page)
        return self.screen

    def rate(self, label: int, reasons=(), shown: str | None = "on screen") -> Screen:
        return self._call(self.desk.rate, shown, label, reasons)

    def skip(self, shown: str | None = "on screen") -> Screen:
        return self._call(self.desk.skip, shown)

    def undo(self, shown: str | None = "on screen") -> Screen:
        return self._call(self.desk.undo, shown)

    def _call(self, method, shown, *args) -> Screen:
        self.screen = method(self.rater, self.page, self.shown if shown == "on screen" else shown, *args)
        return self.screen


def url(run: Path, sample_id: str) -> str:
    return "gradio_api/file=" + urllib.parse.quote(str(run / "images" / f"{sample_id}.png"))


def leases(desk: RatingDesk, rater: str) -> set[str]:
    with sqlite3.connect(desk.store.path) as db:
        return {s for (s,) in db.execute("SELECT sample_id FROM leases WHERE rater = ?", (rater,))}


def table(desk: RatingDesk, query: str) -> list[tuple]:
    with sqlite3.connect(desk.store.path) as db:
        return db.execute(query).fetchall()


def test_start_shows_the_first_sample_and_preloads_the_next_both_leased(tmp_path):
    desk = open_desk(tmp_path, 6)
    run = desk.store.run_dir
    screen = Tab(desk, "bob").start()
    assert screen == Screen(
        session={"rater": "bob", "current": "000000", "next": "000001"},
        prompt='<div class="prompt">a red square</div>',
        image=f'<div class="frame"><img class="sample" data-sample-id="000000" src="{url(run, "000000")}"'
              f' alt="a red square"></div><img class="prefetch" src="{url(run, "000001")}" alt="">',
        status="",
        progress="<div>You today: <b>0</b> · run total: <b>0</b> ratings · still needed: <b>6</b></div>",
        receipt={"outcome": "started", "showing": "000000"},
    )
    assert leases(desk, "bob") == {"000000", "000001"}
    # The same page started again (a reload) takes over its earlier leases: the same two samples, not two more.
    assert Tab(desk, "bob").start().session == {"rater": "bob", "current": "000000", "next": "000001"}
    assert leases(desk, "bob") == {"000000", "000001"}
    # A second tab keeps the first one's samples and gets two of its own.
    assert Tab(desk, "bob", "second").start().session == {"rater": "bob", "current": "000002", "next": "000003"}
    assert leases(desk, "bob") == {"000000", "000001", "000002", "000003"}
    # Another rater gets the samples nobody holds.
    assert Tab(desk, "alice").start().session == {"rater": "alice", "current": "000004", "next": "000005"}


def test_a_rating_is_saved_acknowledged_and_the_preloaded_sample_comes_up(tmp_path):
    desk = open_desk(tmp_path, 4)
    run = desk.store.run_dir
    bob = Tab(desk, "bob")
    bob.start()
    saved = bob.rate(1)
    assert saved == Screen(
        session={"rater": "bob", "current": "000001", "next": "000002"},
        prompt='<div class="prompt">a blue square</div>',
        image=f'<div class="frame"><img class="sample" data-sample-id="000001" src="{url(run, "000001")}"'
              f' alt="a blue square"></div><img class="prefetch" src="{url(run, "000002")}" alt="">',
        status='<span class="ack" data-rating-id="1">Saved 👍 · rating #1</span>',
        progress="<div>You today: <b>1</b> · run total: <b>1</b> ratings · still needed: <b>3</b></div>",
        receipt={"outcome": "saved", "rating_id": 1, "sample_id": "000000", "label": 1, "showing": "000001"},
    )
    assert leases(desk, "bob") == {"000001", "000002"}  # the rated sample's lease is gone

    down = bob.rate(0, ["wrong count", "wrong colour", "wrong count"])
    assert down.status == '<span class="ack" data-rating-id="2">Saved 👎 (wrong count, wrong colour) · rating #2</span>'
    assert down.receipt == {"outcome": "saved", "rating_id": 2, "sample_id": "000001", "label": 0, "showing": "000002"}
    # Reason tags explain a thumbs down only: a thumbs up sent with some is stored without them.
    up = bob.rate(1, ["wrong shape"])
    assert up.status == '<span class="ack" data-rating-id="3">Saved 👍 · rating #3</span>'
    assert table(desk, "SELECT id, sample_id, rater, rater_kind, label, reasons FROM ratings ORDER BY id") == [
        (1, "000000", "bob", "human", 1, "[]"),
        (2, "000001", "bob", "human", 0, '["wrong count", "wrong colour"]'),
        (3, "000002", "bob", "human", 1, "[]"),
    ]
    # The last sample: nothing preloaded behind it; then the end of the run.
    assert up.session == {"rater": "bob", "current": "000003", "next": None}
    assert up.image.endswith('alt="a red square"></div>') and "prefetch" not in up.image
    done = bob.rate(1)
    assert done.session == {"rater": "bob", "current": None, "next": None}
    assert done.prompt == '<div class="prompt">All done — nothing left for you to rate in this run.</div>'
    assert done.image == ""
    assert done.receipt["showing"] is None
    nothing = bob.rate(1)
    assert (nothing.status, nothing.receipt) == ("", {"outcome": "nothing to rate", "showing": None})


def test_a_rating_the_store_refuses_is_not_saved_and_the_next_sample_comes_up(tmp_path):
    now = [1_000.0]
    run = make_run_dir(tmp_path, 3)
    desk = RatingDesk(LabelStore(run, overlap=1, lease_seconds=60, clock=lambda: now[0]))
    desk.store.sync_samples(read_samples(run), {})
    bob, alice = Tab(desk, "bob"), Tab(desk, "alice")
    bob.start()
    # Bob's leases run out while his page sits open, and alice rates his sample meanwhile.
    now[0] += 61
    assert alice.start().session == {"rater": "alice", "current": "000000", "next": "000001"}
    alice.rate(1)
    late = bob.rate(1)
    assert late.status == '<span class="refused">Not saved: sample 000000 already has the 1 rating(s) it needs.</span>'
    assert late.receipt == {"outcome": "refused", "sample_id": "000000", "showing": "000001"}
    assert table(desk, "SELECT rater, sample_id, label FROM ratings ORDER BY id") == [("alice", "000000", 1)]


def test_a_click_sent_again_saves_nothing_more_and_never_rates_an_image_not_shown(tmp_path):
    """The attack: the same click replayed ten times. Each copy used to rate whatever the session
    showed by the time it ran, images the rater never saw included. A click names the sample it was
    made on; once the screen has moved on, copies of it are late and save nothing."""
    desk = open_desk(tmp_path, 12)
    bob = Tab(desk, "bob")
    bob.start()
    copies = [desk.rate("bob", "bob-page", "000000", 1) for _ in range(10)]
    assert [c.receipt["outcome"] for c in copies] == ["saved"] + ["late"] * 9
    assert copies[1].status == ('<span class="refused">Not saved: the image on screen changed before this click arrived,'
                                " so it was not counted; rate the image now shown.</span>")
    assert copies[1].receipt == {"outcome": "late", "sample_id": "000000", "showing": "000001"}
    for late_undo in (desk.undo("bob", "bob-page", "000000"), desk.skip("bob", "bob-page", "000000")):
        assert late_undo.receipt["outcome"] == "late"
    assert table(desk, "SELECT sample_id, undone_at IS NULL FROM ratings") == [("000000", 1)]
    assert table(desk, "SELECT COUNT(*) FROM skips") == [(0,)]


def test_skip_gives_the_sample_back_to_others_and_brings_up_the_next(tmp_path):
    desk = open_desk(tmp_path, 3)
    bob = Tab(desk, "bob")
    bob.start()
    skipped = bob.skip()
    assert (skipped.status, skipped.receipt) == ("Skipped.", {"outcome": "skipped", "showing": "000001"})
    assert skipped.session == {"rater": "bob", "current": "000001", "next": "000002"}
    assert table(desk, "SELECT sample_id, rater FROM skips") == [("000000", "bob")]
    assert leases(desk, "bob") == {"000001", "000002"}
    assert Tab(desk, "alice").start().session["current"] == "000000"  # free for others
    assert Tab(desk, "bob").start().session["current"] == "000001"  # never again for bob
    # With nothing on screen a skip just shows what there is.
    carol = Tab(desk, "carol")
    carol.start()
    fresh = carol.skip()
    assert (fresh.status, fresh.receipt["outcome"]) == ("", "nothing to rate")
    assert table(desk, "SELECT COUNT(*) FROM skips WHERE rater = 'carol'") == [(0,)]


def test_a_click_on_a_page_the_desk_does_not_know_says_not_saved(tmp_path):
    """A page whose session is gone (the server restarted, or the server ended it among too many
    pages of one rater) used to come back as "nothing to rate", saving nothing and saying nothing."""
    desk = open_desk(tmp_path, 3)
    gone = desk.rate("bob", "a-page-never-started", "000000", 1)
    assert gone.status == ('<span class="refused">Not saved: the session of this page has ended (the server restarted,'
                           " or you opened many more pages); reload the page.</span>")
    assert gone.receipt == {"outcome": "not saved", "sample_id": "000000", "showing": None}
    bob = Tab(desk, "bob")
    bob.start()
    desk.end_page("bob-page")
    assert leases(desk, "bob") == set()
    assert bob.rate(1).receipt["outcome"] == "not saved"
    assert table(desk, "SELECT COUNT(*) FROM ratings") == [(0,)]


def test_undo_brings_the_sample_back_and_releases_the_preloaded_one(tmp_path):
    desk = open_desk(tmp_path, 4)
    run = desk.store.run_dir
    bob = Tab(desk, "bob")
    bob.start()
    nothing = bob.undo()
    assert (nothing.status, nothing.receipt) == ("Nothing to undo.", {"outcome": "nothing to undo", "showing": "000000"})
    assert nothing.session == {"rater": "bob", "current": "000000", "next": "000001"}
    rated = bob.rate(0, ["wrong shape"])
    assert rated.session == {"rater": "bob", "current": "000001", "next": "000002"}

    undone = bob.undo()
    assert undone == Screen(
        session={"rater": "bob", "current": "000000", "next": "000001"},
        prompt='<div class="prompt">a red square</div>',
        image=f'<div class="frame"><img class="sample" data-sample-id="000000" src="{url(run, "000000")}"'
              f' alt="a red square"></div><img class="prefetch" src="{url(run, "000001")}" alt="">',
        status="Undid rating #1; rate this image again.",
        progress="<div>You today: <b>0</b> · run total: <b>0</b> ratings · still needed: <b>4</b></div>",
        receipt={"outcome": "undone", "rating_id": 1, "sample_id": "000000", "showing": "000000"},
    )
    assert leases(desk, "bob") == {"000000", "000001"}  # 000002, preloaded until now, is back in the pool
    assert Tab(desk, "alice").start().session["current"] == "000002"
    again = bob.rate(1)
    assert again.receipt == {"outcome": "saved", "rating_id": 2, "sample_id": "000000", "label": 1, "showing": "000001"}
    assert table(desk, "SELECT id, label, undone_at IS NOT NULL FROM ratings ORDER BY id") == [(1, 0, 1), (2, 1, 0)]
    # Another rater's rating is not bob's to take back.
    carol = Tab(desk, "carol")
    carol.start()
    assert carol.undo().receipt == {"outcome": "nothing to undo", "showing": None}


def test_undo_on_the_last_sample_keeps_it_leased_to_the_rater(tmp_path):
    """Moved from test_labeling_access (it needs no server). The attack on the lease: with nothing
    preloaded, an undo used to release every lease of the rater, so the sample back on bob's
    screen went to alice and bob's own re-rating was refused."""
    desk = open_desk(tmp_path, 1)
    bob = Tab(desk, "bob")
    assert bob.start().receipt["showing"] == "000000"
    saved = bob.rate(1)
    assert saved.receipt["outcome"] == "saved"
    undone = bob.undo()
    assert undone.receipt["outcome"] == "undone" and undone.receipt["showing"] == "000000"
    assert Tab(desk, "alice").start().receipt["showing"] is None  # still bob's to rate again
    assert bob.rate(0, ["wrong count"]).receipt["outcome"] == "saved"


def test_a_rater_who_sends_another_s_session_is_refused_and_the_session_is_kept(tmp_path, caplog):
    desk = open_desk(tmp_path, 4)
    bob = Tab(desk, "bob")
    kept = dict(bob.start().session)
    for attack in (lambda: desk.rate("alice", "bob-page", "000000", 1),
                   lambda: desk.rate("alice", "bob-page", "000000", 0, ["wrong count"]),
                   lambda: desk.skip("alice", "bob-page", "000000"), lambda: desk.undo("alice", "bob-page", "000000"),
                   lambda: desk.start("alice", "bob-page")):
        with pytest.raises(RequestRefused) as refused:
            attack()
        assert str(refused.value) == "This session belongs to another rater; reload the page to start your own."
    assert table(desk, "SELECT COUNT(*) FROM ratings") == [(0,)]
    assert table(desk, "SELECT COUNT(*) FROM skips") == [(0,)]
    assert leases(desk, "alice") == set() and leases(desk, "bob") == {"000000", "000001"}
    warnings = [r.getMessage() for r in caplog.records if r.name == DESK_LOG]
    assert warnings == ["alice sent a request in bob's session; refused"] * 5
    saved = bob.rate(1)
    assert saved.session != kept  # bob's own session had been kept as it was
    assert (saved.receipt["outcome"], saved.receipt["sample_id"]) == ("saved", "000000")


def test_an_image_that_goes_bad_while_serving_is_left_out_and_logged(tmp_path, caplog):
    """Moved from test_labeling_access (it needs no server)."""
    desk = open_desk(tmp_path, 8, overlap=2)
    (desk.store.run_dir / "images" / "000007.png").write_bytes(b"truncated")
    cy = Tab(desk, "cy")
    screen = cy.start()
    shown = [screen.receipt["showing"]]
    while shown[-1] is not None:
        screen = cy.rate(1)
        shown.append(screen.receipt["showing"])
    assert "000007" not in shown and "000006" in shown
    assert "sample 000007 is left out: image file images/000007.png is not a readable image" in caplog.text
    assert desk.store.broken_samples() == {"000007": "image file images/000007.png is not a readable image"
                                                     " (UnidentifiedImageError)"}


def test_an_image_deleted_after_preloading_is_not_rated(tmp_path, caplog):
    """Moved from test_labeling_access (it needs no server). The attack on the record: images vanish
    from the run while raters have them preloaded or on screen. A rating must never be stored for
    an image that is gone."""
    desk = open_desk(tmp_path, 4)
    run = desk.store.run_dir
    bob = Tab(desk, "bob")
    assert bob.start().receipt["showing"] == "000000"  # 000001 preloaded behind it
    (run / "images" / "000001.png").unlink()
    saved = bob.rate(1)
    assert (saved.receipt["outcome"], saved.receipt["showing"]) == ("saved", "000002")
    (run / "images" / "000002.png").unlink()  # the one on screen
    refused = bob.rate(1)
    assert (refused.receipt["outcome"], refused.receipt["sample_id"], refused.receipt["showing"]) == ("refused", "000002", "000003")
    assert refused.status == ('<span class="refused">Not saved: this image was removed from the run'
                              ' (image file images/000002.png is missing).</span>')
    assert table(desk, "SELECT sample_id FROM ratings") == [("000000",)]
    assert "sample 000001 is left out: image file images/000001.png is missing" in caplog.text
    assert set(desk.store.broken_samples()) == {"000001", "000002"}


def test_a_preloaded_image_that_went_bad_is_replaced_by_a_showable_one(tmp_path):
    desk = open_desk(tmp_path, 5)
    run = desk.store.run_dir
    bob = Tab(desk, "bob")
    bob.start()
    for sample_id in ("000001", "000002"):  # the preloaded one, and the next the pool would hand out
        (run / "images" / f"{sample_id}.png").unlink()
    saved = bob.rate(1)
    assert saved.session == {"rater": "bob", "current": "000003", "next": "000004"}
    assert saved.image.endswith(f'<img class="prefetch" src="{url(run, "000004")}" alt="">')
    assert leases(desk, "bob") == {"000003", "000004"}


def test_clicks_while_labels_db_is_unwritable_say_not_saved_and_keep_the_screen(tmp_path):
    desk = open_desk(tmp_path, 4)
    run = desk.store.run_dir
    bob = Tab(desk, "bob")
    bob.start()
    before = bob.rate(1)
    assert before.receipt["outcome"] == "saved"
    with read_only(run / "labels.db", run / "labels.db-wal", run):
        # The next write opens a fresh connection, which finds the file read-only. (A connection already
        # open fails in its own words, which differ by platform: test_labeling_access, through the server.)
        desk.store.close()
        for click in (lambda: bob.rate(1), lambda: bob.rate(0, ["malformed"]), bob.skip, bob.undo):
            not_saved = click()
            assert (not_saved.session, not_saved.prompt, not_saved.image) == (before.session, before.prompt, before.image)
            assert not_saved.progress == before.progress
            assert not_saved.receipt == {"outcome": "not saved", "sample_id": "000001", "showing": "000001"}
            assert not_saved.status == (
                f'<span class="refused">Not saved: cannot write to {run}/labels.db (labels.db is read-only):'
                " nothing was saved and the ratings in it are safe; make the run directory and its labels.db"
                " writable.</span>")
        with pytest.raises(RequestRefused, match=r"^Cannot start rating: cannot write to .*labels.db is read-only.*\.$"):
            Tab(desk, "alice").start()
    assert table(desk, "SELECT id, sample_id FROM ratings WHERE undone_at IS NULL") == [(1, "000000")]
    assert table(desk, "SELECT COUNT(*) FROM skips") == [(0,)]
    after = bob.rate(1)  # once writable again, the same click saves
    assert after.receipt == {"outcome": "saved", "rating_id": 2, "sample_id": "000001", "label": 1, "showing": "000002"}


def test_prompts_ids_and_messages_reach_the_screen_escaped(tmp_path):
    prompt = 'a <b>red</b> "square" & <script>alert(1)</script>'
    square = Image.new("RGB", (64, 64), (220, 30, 30))
    run = write_run_dir(tmp_path / "run", [(prompt, square), ("a plain square", square)])
    samples = pd.read_parquet(run / "samples.parquet")
    crafted = '0"><img src=x onerror="document.title=\'pwned\'"><b x="'
    samples.loc[0, "id"] = crafted
    samples.to_parquet(run / "samples.parquet", index=False)
    desk = RatingDesk(open_run_store(run))

    bob = Tab(desk, "bob")
    screen = bob.start()
    escaped_prompt = "a &lt;b&gt;red&lt;/b&gt; &quot;square&quot; &amp; &lt;script&gt;alert(1)&lt;/script&gt;"
    escaped_id = "0&quot;&gt;&lt;img src=x onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;&lt;b x=&quot;"
    assert screen.prompt == f'<div class="prompt">{escaped_prompt}</div>'
    assert screen.image.startswith(f'<div class="frame"><img class="sample" data-sample-id="{escaped_id}" '
                                   f'src="{url(run, "000000")}" alt="{escaped_prompt}"></div>')
    desk.store.rate("bob", crafted, 1)  # rated meanwhile (in another tab, say): the click on screen is refused
    replayed = bob.rate(0)
    assert replayed.status == f'<span class="refused">Not saved: you have already rated sample {escaped_id}.</span>'
    for html_out in (screen.prompt, screen.image, replayed.status):
        assert "<script>" not in html_out and "<img src=x" not in html_out and "<b>" not in html_out

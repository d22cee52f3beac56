"""The rating rules of the app, without a web framework: what a rater's click does and what the screen shows then.

Each open page (a browser tab; Gradio's session hash names it) has a session kept here, a plain
dict {"rater", "current", "next"}: the sample on screen and the one after it, both leased to the
rater (the browser preloads the next one), so a click commits one rating and swaps in an image that
is already there. Sessions live here, not in the page's Gradio state, so that calls of one rater
are taken one at a time on the real session: a click names the sample it was made on (`shown`), and
one that arrives after the screen moved on (sent twice, replayed) saves nothing. A rating is shown
as saved only after `LabelStore.rate` has committed it. Every call returns a `Screen`: the new
session, the HTML of the prompt, image, status and progress (prompts and messages escaped with
html.escape), and a receipt telling API clients what happened and what is now shown.

ui.py wires these calls to Gradio; the rules are tested directly in tests/test_labeling_rules.py.
"""

from __future__ import annotations

import html
import logging
import threading
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from labeling_app.run_dir import image_problem
from labeling_app.store import LabelStore, RatingRefused, StoreUnwritable

log = logging.getLogger(__name__)


class RequestRefused(Exception):
    """A request refused as a whole (nothing changed); its message is shown to the rater as an error."""


@dataclass(frozen=True)
class Screen:
    """What the rater sees after a call, and the receipt for API clients."""

    session: dict
    prompt: str
    image: str
    status: str
    progress: str
    receipt: dict


def image_url(path: Path) -> str:
    """Relative URL of a run-dir file on Gradio's login-protected file route."""
    return "gradio_api/file=" + urllib.parse.quote(str(path))


class RatingDesk:
    """The rules of rating one run: leases and the preloaded next sample, saving, skipping, undoing,
    session ownership, clicks that arrive late, and images that go bad while the app runs."""

    def __init__(self, store: LabelStore):
        self.store = store
        self._sessions: dict[str, dict] = {}  # page -> session; guarded by _lock
        self._rater_turns: dict[str, threading.Lock] = defaultdict(threading.Lock)  # guarded by _lock
        self._lock = threading.Lock()

    # -- the calls of a rater's page -------------------------------------------------------------

    def start(self, rater: str, page: str) -> Screen:
        """A fresh page: it leases the first two samples, and gives back the rater's leases that none of
        their other open pages shows (those of pages closed or reloaded)."""
        with self._turn(rater):
            self._own(page, rater)
            kept = {s for other in self._sessions_of(rater, but=page) for s in (other["current"], other["next"]) if s}
            try:
                self.store.release(rater, keep=kept)
                session = self._advance(rater, {"rater": rater, "current": None, "next": None})
            except StoreUnwritable as exc:
                raise RequestRefused(f"Cannot start rating: {exc}.") from None
            return self._keep(page, self._screen(rater, session, "", {"outcome": "started"}))

    def rate(self, rater: str, page: str, shown: str | None, label: int, reasons: Iterable[str] = ()) -> Screen:
        """Thumbs up (1) or down (0, with optional reason tags) for the sample `shown`, then the next one."""
        return self._click(rater, page, shown, lambda session: self._rate_current(rater, session, label, list(reasons)))

    def skip(self, rater: str, page: str, shown: str | None) -> Screen:
        """The rater will not see the sample `shown` again; the next one comes up."""
        return self._click(rater, page, shown, lambda session: self._skip_current(rater, session))

    def undo(self, rater: str, page: str, shown: str | None) -> Screen:
        """Retract the rater's latest rating: its sample comes back on screen, the one showing (`shown`)
        becomes the preloaded next, and the sample preloaded until now goes back to the pool."""
        return self._click(rater, page, shown, lambda session: self._undo_last(rater, session))

    def end_page(self, page: str) -> None:
        """Forget a page (the server ended it): its leases go back to the pool; a later click on it is not saved."""
        with self._lock:
            session = self._sessions.get(page)
        if session is None:
            return
        with self._turn(session["rater"]):
            self._sessions.pop(page, None)
            try:
                self.store.release(session["rater"], [session["current"], session["next"]])
            except StoreUnwritable:
                pass  # the leases expire by themselves

    # -- the rules ---------------------------------------------------------------------------------

    @contextmanager
    def _turn(self, rater: str) -> Iterator[None]:
        """One call of a rater at a time, across all their pages: each sees the sessions and leases the
        previous one left."""
        with self._lock:
            turn = self._rater_turns[rater]
        with turn:
            yield

    def _own(self, page: str, rater: str) -> dict | None:
        """The page's session, or None before its start (or after the server ended it). Gradio names a
        page by a hash the client chooses: a rater who sends another rater's is refused, and the state is
        kept."""
        with self._lock:
            session = self._sessions.get(page)
        if session is not None and session["rater"] != rater:
            log.warning("%s sent a request in %s's session; refused", rater, session["rater"])
            raise RequestRefused("This session belongs to another rater; reload the page to start your own.")
        return session

    def _click(self, rater: str, page: str, shown: str | None, action) -> Screen:
        """One click on a page: refused on another rater's page, not counted when late, "not saved" when
        labels.db cannot be written; otherwise `action(session)`'s screen, kept as the page's session."""
        with self._turn(rater):
            session = self._own(page, rater)
            if (late := self._late(rater, session, shown)) is not None:
                return late
            try:
                screen = action(session)
            except StoreUnwritable as exc:
                screen = self._not_saved(rater, session, exc)
            return self._keep(page, screen)

    def _sessions_of(self, rater: str, but: str) -> list[dict]:
        with self._lock:
            return [s for page, s in self._sessions.items() if s["rater"] == rater and page != but]

    def _keep(self, page: str, screen: Screen) -> Screen:
        with self._lock:
            self._sessions[page] = screen.session
        return screen

    def _late(self, rater: str, session: dict | None, shown: str | None) -> Screen | None:
        """The screen of a click that cannot count: its page has no session, or the sample it was made on
        is no longer the one on screen (a click sent twice, or replayed). None when the click counts."""
        if session is None:
            empty = {"rater": rater, "current": None, "next": None}
            why = "the session of this page has ended (the server restarted, or you opened many more pages); reload the page"
            return self._screen(rater, empty, refused(why), {"outcome": "not saved", "sample_id": shown or None})
        if (shown or None) != session["current"]:
            why = "the image on screen changed before this click arrived, so it was not counted; rate the image now shown"
            return self._screen(rater, session, refused(why), {"outcome": "late", "sample_id": shown or None})
        return None

    def _image_gone(self, sample_id: str) -> str | None:
        """Why the sample's image can no longer be shown (it can go bad while the app runs, even after the
        browser preloaded it): the sample is then left out and logged, and the app keeps serving."""
        problem = image_problem(self.store.run_dir, self.store.sample(sample_id))
        if problem is not None:
            log.warning("sample %s is left out: %s", sample_id, problem)
            self.store.mark_broken(sample_id, problem)
        return problem

    def _lease_showable(self, rater: str) -> str | None:
        while (sample_id := self.store.next_sample(rater)) is not None:
            if self._image_gone(sample_id) is None:
                return sample_id
        return None

    def _advance(self, rater: str, session: dict) -> dict:
        upcoming = session["next"]
        if upcoming is not None and self._image_gone(upcoming) is None:
            current = upcoming
        else:
            current = self._lease_showable(rater)
        return {"rater": rater, "current": current, "next": self._lease_showable(rater) if current else None}

    def _rate_current(self, rater: str, session: dict, label: int, reasons: list[str]) -> Screen:
        if session["current"] is None:
            return self._screen(rater, self._advance(rater, session), "", {"outcome": "nothing to rate"})
        sample_id = session["current"]
        gone = self._image_gone(sample_id)
        if gone is not None:
            status = refused(f"this image was removed from the run ({gone})")
            receipt = {"outcome": "refused", "sample_id": sample_id}
            return self._screen(rater, self._advance(rater, session), status, receipt)
        try:
            rating = self.store.rate(rater, sample_id, label, reasons if label == 0 else [], kind="human")
        except RatingRefused as exc:
            status = refused(str(exc))
            receipt = {"outcome": "refused", "sample_id": sample_id}
        else:
            thumb = "👍" if label else "👎"
            why = f" ({html.escape(', '.join(rating.reasons))})" if rating.reasons else ""
            status = f'<span class="ack" data-rating-id="{rating.id}">Saved {thumb}{why} · rating #{rating.id}</span>'
            receipt = {"outcome": "saved", "rating_id": rating.id, "sample_id": sample_id, "label": label}
        return self._screen(rater, self._advance(rater, session), status, receipt)

    def _skip_current(self, rater: str, session: dict) -> Screen:
        if session["current"] is None:
            return self._screen(rater, self._advance(rater, session), "", {"outcome": "nothing to rate"})
        self.store.skip(rater, session["current"])
        return self._screen(rater, self._advance(rater, session), "Skipped.", {"outcome": "skipped"})

    def _undo_last(self, rater: str, session: dict) -> Screen:
        undone = self.store.undo_last(rater)
        if undone is None:
            return self._screen(rater, session, "Nothing to undo.", {"outcome": "nothing to undo"})
        # The undone sample comes back on screen; the one that was showing becomes the preloaded next.
        self.store.release(rater, [session["next"]])
        session = {"rater": rater, "current": undone.sample_id, "next": session["current"]}
        status = f"Undid rating #{undone.id}; rate this image again."
        receipt = {"outcome": "undone", "rating_id": undone.id, "sample_id": undone.sample_id}
        return self._screen(rater, session, status, receipt)

    def _not_saved(self, rater: str, session: dict, exc: StoreUnwritable) -> Screen:
        """The screen as it was, with why the click was not saved; the rater can click again once the disk is back."""
        return self._screen(rater, session, refused(str(exc)), {"outcome": "not saved", "sample_id": session["current"]})

    # -- what the screen shows ---------------------------------------------------------------------

    def _screen(self, rater: str, session: dict, status: str, receipt: dict) -> Screen:
        prompt, image = self._render(session)
        receipt = {**receipt, "showing": session["current"]}
        return Screen(session, prompt, image, status, self._progress_html(rater), receipt)

    def _render(self, session: dict) -> tuple[str, str]:
        current, upcoming = session["current"], session["next"]
        if current is None:
            return '<div class="prompt">All done — nothing left for you to rate in this run.</div>', ""
        store = self.store
        sample = store.sample(current)
        alt = html.escape(sample.prompt, quote=True)
        image = (
            f'<div class="frame"><img class="sample" data-sample-id="{html.escape(sample.id, quote=True)}" '
            f'src="{image_url(store.run_dir / sample.image_path)}" alt="{alt}"></div>'
        )
        if upcoming is not None:
            image += f'<img class="prefetch" src="{image_url(store.run_dir / store.sample(upcoming).image_path)}" alt="">'
        return f'<div class="prompt">{html.escape(sample.prompt)}</div>', image

    def _progress_html(self, rater: str) -> str:
        p = self.store.progress(rater)
        return (
            f"<div>You today: <b>{p.mine_today}</b> · run total: <b>{p.run_total}</b> ratings"
            f" · still needed: <b>{p.remaining}</b></div>"
        )


def refused(why: str) -> str:
    """The status line of a click that was not saved."""
    return f'<span class="refused">Not saved: {html.escape(why)}.</span>'

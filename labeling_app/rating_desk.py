"""The rating rules of the app, without a web framework: what a rater's click does and what the screen shows then.

A rater's session is a plain dict, {"rater", "current", "next"}: the sample on screen and the one
after it, both leased to the rater (the browser preloads the next one), so a click commits one
rating and swaps in an image that is already there. A rating is shown as saved only after
`LabelStore.rate` has committed it. Every call returns a `Screen`: the new session, the HTML of
the prompt, image, status and progress (prompts and messages escaped with html.escape), and a
receipt telling API clients what happened and what is now shown.

ui.py wires these calls to Gradio; the rules are tested directly in tests/test_labeling_rules.py.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from collections.abc import Iterable
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
    session ownership, and images that go bad while the app runs."""

    def __init__(self, store: LabelStore):
        self.store = store

    # -- the calls of a rater's page -------------------------------------------------------------

    def start(self, rater: str) -> Screen:
        """A fresh page: it takes over the rater's earlier leases and leases the first two samples."""
        try:
            self.store.release(rater)
            session = self._advance(rater, self._own(None, rater))
        except StoreUnwritable as exc:
            raise RequestRefused(f"Cannot start rating: {exc}.") from None
        return self._screen(rater, session, "", {"outcome": "started"})

    def rate(self, rater: str, session: dict | None, label: int, reasons: Iterable[str] = ()) -> Screen:
        """Thumbs up (1) or down (0, with optional reason tags) for the sample on screen, then the next one."""
        session = self._own(session, rater)
        try:
            return self._rate_current(rater, session, label, list(reasons))
        except StoreUnwritable as exc:
            return self._not_saved(rater, session, exc)

    def skip(self, rater: str, session: dict | None) -> Screen:
        """The rater will not see the sample on screen again; the next one comes up."""
        session = self._own(session, rater)
        try:
            if session["current"]:
                self.store.skip(rater, session["current"])
                return self._screen(rater, self._advance(rater, session), "Skipped.", {"outcome": "skipped"})
            return self._screen(rater, self._advance(rater, session), "", {"outcome": "nothing to rate"})
        except StoreUnwritable as exc:
            return self._not_saved(rater, session, exc)

    def undo(self, rater: str, session: dict | None) -> Screen:
        """Retract the rater's latest rating: its sample comes back on screen, the one showing becomes the
        preloaded next, and the sample preloaded until now goes back to the pool."""
        session = self._own(session, rater)
        try:
            return self._undo_last(rater, session)
        except StoreUnwritable as exc:
            return self._not_saved(rater, session, exc)

    # -- the rules ---------------------------------------------------------------------------------

    def _own(self, session: dict | None, rater: str) -> dict:
        """The rater's session (an empty one before their first call). Gradio keys state by a session
        hash the client chooses: a rater who learns another's hash is refused, and the state is kept."""
        if session is None:
            return {"rater": rater, "current": None, "next": None}
        if session.get("rater") != rater:
            log.warning("%s sent a request in %s's session; refused", rater, session.get("rater"))
            raise RequestRefused("This session belongs to another rater; reload the page to start your own.")
        return session

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

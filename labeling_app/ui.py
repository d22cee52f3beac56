"""The Gradio Blocks app: the rating screen for raters and the admin tab.

Each browser session holds the sample on screen and the one after it (already leased and
preloaded by the browser), so a click commits one rating and swaps in an image that is
already there. A rating is shown as saved only after `LabelStore.rate` has committed it.
Prompts and messages reach gr.HTML components escaped with the standard library's html.escape.
"""

from __future__ import annotations

import html
import logging
import tempfile
import urllib.parse
from pathlib import Path

import gradio as gr

from labeling_app.accounts import Accounts
from labeling_app.export import write_labels
from labeling_app.run_dir import image_problem
from labeling_app.stats import summary_markdown
from labeling_app.store import REASONS, LabelStore, RatingRefused, StoreUnwritable

log = logging.getLogger(__name__)

INSTRUCTIONS = f"""\
**Does the image match the prompt?** Judge only what the prompt says: the **number** of
objects, their **colour** and **shape**, and the **background**. Thumbs up when all of it is
right; thumbs down when anything is wrong (tick why, if you like). Skip when you cannot tell.

Keys: **Y** thumbs up · **N** thumbs down · **S** skip · **U** undo your last rating ·
**1–{len(REASONS)}** tick a reason, before pressing N.
"""

CSS = """
#prompt .prompt { font-size: 2.4rem; font-weight: 600; text-align: center; margin: 0.5rem 0; }
#image .frame { display: flex; justify-content: center; }
#image img.sample { width: min(512px, 90vw); height: auto; image-rendering: pixelated; }
#image img.prefetch { position: absolute; width: 1px; height: 1px; opacity: 0; pointer-events: none; }
#status .ack { color: #15803d; font-weight: 600; }
#status .refused { color: #b91c1c; font-weight: 600; }
"""

# Shortcuts click the on-screen buttons, so keyboard and mouse take the same path.
KEYBOARD_JS = """
<script>
document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
  if (event.target.closest && event.target.closest("input[type=text], input[type=password], textarea")) return;
  const buttons = {y: "thumbs-up", n: "thumbs-down", s: "skip", u: "undo"};
  const key = event.key.toLowerCase();
  if (buttons[key]) {
    const button = document.getElementById(buttons[key]);
    if (button) { event.preventDefault(); button.click(); }
  } else if (/^[1-9]$/.test(key)) {
    const boxes = document.querySelectorAll("#reasons input[type=checkbox]");
    const box = boxes[Number(key) - 1];
    if (box) { event.preventDefault(); box.click(); }
  }
});
</script>
"""


# The endpoints stay callable by logged-in clients (labeling_app.http_client) but are not listed: Gradio
# would otherwise embed their list in the login page served to anyone.
UNLISTED = "undocumented"


def image_url(path: Path) -> str:
    """Relative URL of a run-dir file on Gradio's login-protected file route."""
    return "gradio_api/file=" + urllib.parse.quote(str(path))


def build_app(store: LabelStore, accounts: Accounts, export_dir: Path) -> gr.Blocks:

    def render(session: dict) -> tuple[str, str]:
        current, upcoming = session["current"], session["next"]
        if current is None:
            return '<div class="prompt">All done — nothing left for you to rate in this run.</div>', ""
        sample = store.sample(current)
        alt = html.escape(sample.prompt, quote=True)
        image = (
            f'<div class="frame"><img class="sample" data-sample-id="{html.escape(sample.id, quote=True)}" '
            f'src="{image_url(store.run_dir / sample.image_path)}" alt="{alt}"></div>'
        )
        if upcoming is not None:
            image += f'<img class="prefetch" src="{image_url(store.run_dir / store.sample(upcoming).image_path)}" alt="">'
        return f'<div class="prompt">{html.escape(sample.prompt)}</div>', image

    def progress_html(rater: str) -> str:
        p = store.progress(rater)
        return (
            f"<div>You today: <b>{p.mine_today}</b> · run total: <b>{p.run_total}</b> ratings"
            f" · still needed: <b>{p.remaining}</b></div>"
        )

    def image_gone(sample_id: str) -> str | None:
        """Why the sample's image can no longer be shown (it can go bad while the app runs, even after the
        browser preloaded it): the sample is then left out and logged, and the app keeps serving."""
        problem = image_problem(store.run_dir, store.sample(sample_id))
        if problem is not None:
            log.warning("sample %s is left out: %s", sample_id, problem)
            store.mark_broken(sample_id, problem)
        return problem

    def lease_showable(rater: str) -> str | None:
        while (sample_id := store.next_sample(rater)) is not None:
            if image_gone(sample_id) is None:
                return sample_id
        return None

    def advance(rater: str, session: dict) -> dict:
        upcoming = session["next"]
        current = upcoming if upcoming is not None and image_gone(upcoming) is None else lease_showable(rater)
        return {"rater": rater, "current": current, "next": lease_showable(rater) if current else None}

    def own(session: dict | None, rater: str) -> dict:
        """The rater's session (an empty one before their first call). Gradio keys state by a session
        hash the client chooses: a rater who learns another's hash is refused, and the state is kept."""
        if session is None:
            return {"rater": rater, "current": None, "next": None}
        if session.get("rater") != rater:
            log.warning("%s sent a request in %s's session; refused", rater, session.get("rater"))
            raise gr.Error("This session belongs to another rater; reload the page to start your own.")
        return session

    def screen(rater: str, session: dict, status: str, receipt: dict) -> tuple:
        """All outputs of an event; `receipt` tells API clients what happened and what is now shown."""
        prompt, image = render(session)
        receipt = {**receipt, "showing": session["current"]}
        return session, prompt, image, [], status, progress_html(rater), receipt

    def refused(why: str) -> str:
        return f'<span class="refused">Not saved: {html.escape(why)}.</span>'

    def not_saved(rater: str, session: dict, exc: StoreUnwritable) -> tuple:
        """The screen as it was, with why the click was not saved; the rater can click again once the disk is back."""
        return screen(rater, session, refused(str(exc)), {"outcome": "not saved", "sample_id": session["current"]})

    def start(request: gr.Request):
        rater = request.username
        try:
            store.release(rater)  # a fresh page takes over the rater's earlier leases
            session = advance(rater, own(None, rater))
        except StoreUnwritable as exc:
            raise gr.Error(f"Cannot start rating: {exc}.") from None
        return (*screen(rater, session, "", {"outcome": "started"}), gr.update(visible=accounts.is_admin(rater)))

    def rate(label: int, session: dict | None, reasons: list[str], request: gr.Request) -> tuple:
        rater = request.username
        session = own(session, rater)
        try:
            return rate_current(rater, label, session, reasons)
        except StoreUnwritable as exc:
            return not_saved(rater, session, exc)

    def rate_current(rater: str, label: int, session: dict, reasons: list[str]) -> tuple:
        if session["current"] is None:
            return screen(rater, advance(rater, session), "", {"outcome": "nothing to rate"})
        sample_id = session["current"]
        gone = image_gone(sample_id)
        if gone is not None:
            status = refused(f"this image was removed from the run ({gone})")
            return screen(rater, advance(rater, session), status, {"outcome": "refused", "sample_id": sample_id})
        try:
            rating = store.rate(rater, sample_id, label, reasons if label == 0 else [], kind="human")
        except RatingRefused as exc:
            status = refused(str(exc))
            receipt = {"outcome": "refused", "sample_id": sample_id}
        else:
            thumb = "👍" if label else "👎"
            why = f" ({html.escape(', '.join(rating.reasons))})" if rating.reasons else ""
            status = f'<span class="ack" data-rating-id="{rating.id}">Saved {thumb}{why} · rating #{rating.id}</span>'
            receipt = {"outcome": "saved", "rating_id": rating.id, "sample_id": sample_id, "label": label}
        return screen(rater, advance(rater, session), status, receipt)

    def thumbs_up(session, request: gr.Request):
        return rate(1, session, [], request)

    def thumbs_down(session, reasons, request: gr.Request):
        return rate(0, session, reasons or [], request)

    def skip(session, request: gr.Request):
        rater = request.username
        session = own(session, rater)
        try:
            if session["current"]:
                store.skip(rater, session["current"])
                return screen(rater, advance(rater, session), "Skipped.", {"outcome": "skipped"})
            return screen(rater, advance(rater, session), "", {"outcome": "nothing to rate"})
        except StoreUnwritable as exc:
            return not_saved(rater, session, exc)

    def undo(session, request: gr.Request):
        rater = request.username
        session = own(session, rater)
        try:
            return undo_last(rater, session)
        except StoreUnwritable as exc:
            return not_saved(rater, session, exc)

    def undo_last(rater: str, session: dict) -> tuple:
        undone = store.undo_last(rater)
        if undone is None:
            return screen(rater, session, "Nothing to undo.", {"outcome": "nothing to undo"})
        # The undone sample comes back on screen; the one that was showing becomes the preloaded next.
        store.release(rater, [session["next"]])
        session = {"rater": rater, "current": undone.sample_id, "next": session["current"]}
        status = f"Undid rating #{undone.id}; rate this image again."
        return screen(rater, session, status, {"outcome": "undone", "rating_id": undone.id, "sample_id": undone.sample_id})

    def require_admin(request: gr.Request) -> None:
        if not accounts.is_admin(request.username):
            raise gr.Error("Only admins can see statistics and export labels.")

    def admin_summary(request: gr.Request) -> str:
        require_admin(request)
        return summary_markdown(store)

    def admin_export(request: gr.Request) -> str:
        require_admin(request)
        # Each export in its own private folder: concurrent exports never share a file.
        out = Path(tempfile.mkdtemp(dir=export_dir)) / "labels.parquet"
        write_labels([store], out)
        out.chmod(0o600)
        return str(out)

    with gr.Blocks(title="t2i-align · rate images", analytics_enabled=False) as app:
        session = gr.State(None)
        with gr.Tab("Rate"):
            gr.Markdown(INSTRUCTIONS)
            prompt = gr.HTML(elem_id="prompt", js_on_load=None)
            image = gr.HTML(elem_id="image", js_on_load=None)
            with gr.Row():
                up = gr.Button("👍 Matches  [Y]", elem_id="thumbs-up", variant="primary")
                down = gr.Button("👎 Does not match  [N]", elem_id="thumbs-down", variant="stop")
                skip_button = gr.Button("Skip  [S]", elem_id="skip")
                undo_button = gr.Button("Undo last  [U]", elem_id="undo")
            reasons = gr.CheckboxGroup([(f"{tag}  [{key}]", tag) for key, tag in enumerate(REASONS, 1)],
                                      label=f"Why not? (optional; keys 1–{len(REASONS)}, then N)", elem_id="reasons")
            status = gr.HTML(elem_id="status", js_on_load=None)
            progress = gr.HTML(elem_id="progress", js_on_load=None)
            receipt = gr.JSON(visible=False)
        with gr.Tab("Admin", visible=False) as admin_tab:
            refresh = gr.Button("Refresh statistics")
            summary = gr.Markdown()
            export_button = gr.Button("Export labels.parquet")
            export_file = gr.File(label="labels.parquet")

        outputs = [session, prompt, image, reasons, status, progress, receipt]
        app.load(start, None, [*outputs, admin_tab], api_name="start", api_visibility=UNLISTED)
        up.click(thumbs_up, [session], outputs, api_name="thumbs_up", api_visibility=UNLISTED)
        down.click(thumbs_down, [session, reasons], outputs, api_name="thumbs_down", api_visibility=UNLISTED)
        skip_button.click(skip, [session], outputs, api_name="skip", api_visibility=UNLISTED)
        undo_button.click(undo, [session], outputs, api_name="undo", api_visibility=UNLISTED)
        refresh.click(admin_summary, None, summary, api_name="admin_summary", api_visibility=UNLISTED)
        export_button.click(admin_export, None, export_file, api_name="admin_export", api_visibility=UNLISTED)
    return app

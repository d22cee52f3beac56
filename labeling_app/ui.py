"""The Gradio Blocks app: the rating screen for raters and the admin tab.

Only the wiring lives here: the logged-in user of each request, components and events, and
refusals turned into gr.Error. The rating rules (leases and the preloaded next sample, saving,
skip, undo, session ownership, images that go bad) and the HTML they show are RatingDesk's,
in rating_desk.py. Prompts and messages reach gr.HTML components escaped there.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from labeling_app.accounts import Accounts
from labeling_app.export import write_labels
from labeling_app.rating_desk import RatingDesk, RequestRefused, Screen
from labeling_app.stats import summary_markdown
from labeling_app.store import REASONS, LabelStore

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


def build_app(store: LabelStore, accounts: Accounts, export_dir: Path, desk: RatingDesk) -> gr.Blocks:
    """The components and their events; what a click does is the desk's (rating_desk.py). Each page is
    named by Gradio's session hash, and each click sends the id of the sample it was made on."""

    def shown(screen: Screen) -> tuple:
        """All outputs of a rating event, in the order of `outputs` below; the reasons ticked are cleared."""
        on_screen = screen.session["current"] or ""
        return on_screen, screen.prompt, screen.image, [], screen.status, screen.progress, screen.receipt

    def call(method, request: gr.Request, *args) -> tuple:
        try:
            return shown(method(request.username, request.session_hash, *args))
        except RequestRefused as exc:
            raise gr.Error(str(exc)) from None

    def start(request: gr.Request):
        return (*call(desk.start, request), gr.update(visible=accounts.is_admin(request.username)))

    def thumbs_up(sample_id, request: gr.Request):
        return call(desk.rate, request, sample_id, 1, [])

    def thumbs_down(sample_id, reasons, request: gr.Request):
        return call(desk.rate, request, sample_id, 0, reasons or [])

    def skip(sample_id, request: gr.Request):
        return call(desk.skip, request, sample_id)

    def undo(sample_id, request: gr.Request):
        return call(desk.undo, request, sample_id)

    def page_closed(request: gr.Request) -> None:
        desk.end_page(request.session_hash)

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
        # The id of the sample on screen, sent with every click (a click that arrives late saves nothing).
        on_screen = gr.Textbox(visible=False, elem_id="on-screen")
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

        outputs = [on_screen, prompt, image, reasons, status, progress, receipt]
        app.load(start, None, [*outputs, admin_tab], api_name="start", api_visibility=UNLISTED)
        up.click(thumbs_up, [on_screen], outputs, api_name="thumbs_up", api_visibility=UNLISTED)
        down.click(thumbs_down, [on_screen, reasons], outputs, api_name="thumbs_down", api_visibility=UNLISTED)
        skip_button.click(skip, [on_screen], outputs, api_name="skip", api_visibility=UNLISTED)
        undo_button.click(undo, [on_screen], outputs, api_name="undo", api_visibility=UNLISTED)
        refresh.click(admin_summary, None, summary, api_name="admin_summary", api_visibility=UNLISTED)
        export_button.click(admin_export, None, export_file, api_name="admin_export", api_visibility=UNLISTED)
        app.unload(page_closed)  # its samples go back to the pool at once, not when their leases expire
    return app

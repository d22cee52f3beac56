"""Serving the rating app for one run dir: login on every route, files only from the run's image folders."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import tempfile
from pathlib import Path

from labeling_app.accounts import Accounts
from labeling_app.errors import LabelingError
from labeling_app.http_guard import CLIENT_ADDRESS, HttpGuard
from labeling_app.login_limits import LoginLimits
from labeling_app.page_owners import PageOwners
from labeling_app.sessions import LiveSessions
from labeling_app.store import LabelStore

# Concurrent handlers per event; SQLite serialises the writes, the rest (rendering, reads) runs in parallel.
log = logging.getLogger(__name__)

HANDLER_CONCURRENCY = 32
DEFAULT_IDLE_MINUTES = 60.0


def check_port(host: str, port: int) -> None:
    """Refuse, before anything is opened or written, an address the server could not listen on."""
    if not 1 <= port <= 65535:
        raise LabelingError(f"--port must be between 1 and 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:  # gaierror too
        raise LabelingError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); is another server using it?"
                            " pick another --port or --host") from None


def serve(store: LabelStore, accounts: Accounts, host: str, port: int, quiet: bool = False,
          idle_minutes: float = DEFAULT_IDLE_MINUTES, limits: LoginLimits | None = None,
          trusted_proxies: tuple[str, ...] = ()) -> None:
    """Block serving the app until interrupted. Only requests from `trusted_proxies` (addresses or networks)
    may name their client in X-Forwarded-For; uvicorn's own default would trust any local process."""
    if not accounts.list():
        raise LabelingError(
            f"there are no rater accounts in {accounts.path}; add one with `t2i-align raters add NAME --admin`"
        )
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no phoning home from a rating server
    os.environ["FORWARDED_ALLOW_IPS"] = ",".join(trusted_proxies)  # read by uvicorn; empty trusts nobody
    # Exports, and the copies Gradio serves of them, live in one folder only this user can read,
    # removed when the server stops.
    private = Path(tempfile.mkdtemp(prefix="t2i-align-label-"))
    os.environ["GRADIO_TEMP_DIR"] = str(private / "gradio")
    (private / "exports").mkdir()
    signal.signal(signal.SIGTERM, _stop)  # so that `kill` (not only Ctrl-C) cleans up too
    try:
        _launch(store, accounts, host, port, quiet, private, idle_minutes, limits or LoginLimits())
    finally:
        shutil.rmtree(private, ignore_errors=True)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


def _launch(store: LabelStore, accounts: Accounts, host: str, port: int, quiet: bool, private: Path,
            idle_minutes: float, limits: LoginLimits) -> None:
    from fastapi import HTTPException
    from starlette.middleware import Middleware

    from labeling_app.rating_desk import RatingDesk
    from labeling_app.ui import CSS, KEYBOARD_JS, build_app

    accounts.verify("", "")  # builds the unknown-account hash now, not during the first login

    async def login(name: str, password: str) -> bool:
        address = CLIENT_ADDRESS.get()
        async with limits.turn(name, address):
            refusal = limits.refusal(name, address)
            if refusal:
                raise HTTPException(status_code=429, detail=refusal)
            # scrypt is slow on purpose; keep it off the event loop that serves everyone else.
            if await asyncio.to_thread(accounts.verify, name, password):
                return True
            limits.failed(name, address)
        log.warning("failed login for %r from %s", name, address)
        return False

    desk = RatingDesk(store)
    app = build_app(store, accounts, private / "exports", desk)
    app.queue(default_concurrency_limit=HANDLER_CONCURRENCY)

    def end_page(page: str) -> None:
        desk.end_page(page)
        app.app.state_holder.delete_state(page)

    images = image_files(store)
    guard = {"private": private, "is_admin": accounts.is_admin, "images": images, "pages": PageOwners(on_end=end_page)}
    app.launch(
        server_name=host,
        server_port=port,
        auth=login,
        auth_message="t2i-align rating: sign in with the account your admin made for you.",
        allowed_paths=image_folders(images, store.run_dir),
        blocked_paths=[str(store.path.with_name(store.path.name + suffix)) for suffix in ("", "-wal", "-shm")],
        enable_monitoring=False,
        run_history=False,
        mcp_server=False,
        ssr_mode=False,
        show_error=True,
        quiet=quiet,
        footer_links=[],
        css=CSS,
        head=KEYBOARD_JS,
        prevent_thread_lock=True,
        app_kwargs={"middleware": [Middleware(HttpGuard, **guard)]},
    )
    # Gradio's token table, replaced right after start: a login in that instant just has to log in again.
    app.app.tokens = LiveSessions(accounts, idle_minutes * 60)
    app.block_thread()


def image_folders(images: frozenset[Path], run_dir: Path) -> list[str]:
    """The folders holding the run's `images` (normally just RUN_DIR/images), which Gradio is told it may
    serve from; HttpGuard narrows that to the images themselves."""
    run_dir = run_dir.resolve()
    return sorted({str(path.parent) for path in images if path.parent.is_relative_to(run_dir)})


def image_files(store: LabelStore) -> frozenset[Path]:
    """The image files named in samples.parquet that can be shown: the only files of the run ever served
    (never samples.parquet, config.yaml or anything else beside the images)."""
    run_dir = store.run_dir.resolve()
    return frozenset((run_dir / store.sample(sample_id).image_path).resolve() for sample_id in store.sample_ids())

"""`t2i-align label RUN_DIR`: serve the rating app over one run directory."""

from __future__ import annotations

import argparse
import logging

HELP = "serve the Gradio rating app over a run directory; ratings go to RUN_DIR/labels.db"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="run directory written by `t2i-align generate`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")
    parser.add_argument(
        "--overlap", type=int, default=None, help="distinct raters per sample (default: as last set for this run, else 1)"
    )
    parser.add_argument(
        "--lease-seconds", type=float, default=300.0, help="how long a sample shown to a rater is held for them"
    )
    parser.add_argument(
        "--max-leases", type=int, default=4, help="samples one rater may hold at once; a new one releases the oldest (default 4)"
    )
    parser.add_argument(
        "--idle-minutes", type=float, default=60.0, help="a login session without a request for this long ends (default 60)"
    )
    parser.add_argument(
        "--failed-logins-per-account", type=int, default=5,
        help="failed logins one account may take in 15 minutes before further attempts wait (default 5)",
    )
    parser.add_argument(
        "--failed-logins-per-address", type=int, default=20,
        help="failed logins from one client address in 15 minutes before further attempts wait (default 20)",
    )
    parser.add_argument(
        "--trusted-proxy", action="append", default=[], metavar="ADDRESS",
        help="a reverse proxy (address or network) whose X-Forwarded-For header names the real client, for login"
             " limits and logs; repeatable. Default: none, every request counts from the address it came from."
             " Behind a TLS proxy on the same host: --trusted-proxy 127.0.0.1",
    )
    parser.add_argument("--accounts", default=None, help="rater accounts file (default: $T2I_ALIGN_RATERS or ~/.config/t2i-align/raters.db)")
    parser.add_argument("--quiet", action="store_true", help="print less")


def run(args: argparse.Namespace) -> int:
    import ipaddress
    import math

    from labeling_app.accounts import Accounts, default_accounts_path
    from labeling_app.errors import LabelingError
    from labeling_app.login_limits import LoginLimits
    from labeling_app.server import check_port, serve
    from labeling_app.store import open_run_store

    # Options first, then the port: nothing is opened or written for a command that cannot serve.
    if not (math.isfinite(args.idle_minutes) and args.idle_minutes > 0):
        raise LabelingError(f"--idle-minutes must be a positive number, got {args.idle_minutes}")
    for option in ("failed_logins_per_account", "failed_logins_per_address"):
        if getattr(args, option) < 1:
            raise LabelingError(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")
    for proxy in args.trusted_proxy:
        try:
            ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            raise LabelingError(f"--trusted-proxy takes an IP address or network such as 127.0.0.1, got {proxy!r}") from None
    check_port(args.host, args.port)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes
    store = open_run_store(args.run_dir, overlap=args.overlap, lease_seconds=args.lease_seconds, max_leases=args.max_leases)
    accounts = Accounts(args.accounts or default_accounts_path())
    left_out = len(store.broken_samples())
    print(
        f"labeling {len(store.sample_ids())} samples of {store.run_dir} (overlap {store.overlap},"
        f" {left_out} left out), ratings in {store.path}",
        flush=True,
    )
    limits = LoginLimits(per_account=args.failed_logins_per_account, per_address=args.failed_logins_per_address)
    serve(store, accounts, args.host, args.port, quiet=args.quiet, idle_minutes=args.idle_minutes, limits=limits,
          trusted_proxies=tuple(args.trusted_proxy))
    return 0

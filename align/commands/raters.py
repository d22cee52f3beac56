"""`t2i-align raters add|list|remove|set-admin|set-password`: rater accounts for the rating app.

Removing a rater, changing their admin flag or their password ends their open sessions at once."""

from __future__ import annotations

import argparse
import getpass
import sys

HELP = "manage rater accounts of the rating app (add, list, remove, set-admin, set-password)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--accounts", default=None, help="accounts file (default: $T2I_ALIGN_RATERS or ~/.config/t2i-align/raters.db)"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a rater (asks for the password twice)")
    add.add_argument("name")
    add.add_argument("--admin", action="store_true", help="may see statistics and export labels")
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    actions.add_parser("list", help="list raters")
    remove = actions.add_parser("remove", help="remove a rater (their ratings stay)")
    remove.add_argument("name")
    admin = actions.add_parser("set-admin", help="make a rater an admin (or not, with --off)")
    admin.add_argument("name")
    admin.add_argument("--off", action="store_true", help="take admin rights away instead")
    password = actions.add_parser("set-password", help="give a rater a new password (asks for it twice)")
    password.add_argument("name")
    password.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")


def run(args: argparse.Namespace) -> int:
    from labeling_app.accounts import Accounts, default_accounts_path
    from labeling_app.errors import LabelingError

    accounts = Accounts(args.accounts or default_accounts_path())
    if args.action == "add":
        accounts.add(args.name, _read_password(args.password_stdin, LabelingError), admin=args.admin)
        print(f"added {'admin' if args.admin else 'rater'} {args.name} to {accounts.path}")
    elif args.action == "list":
        for rater in accounts.list():
            print(f"{rater.name}\t{'admin' if rater.admin else 'rater'}\t{rater.created_at}")
    elif args.action == "remove":
        accounts.remove(args.name)
        print(f"removed {args.name}; their ratings stay in the runs they rated")
    elif args.action == "set-admin":
        accounts.set_admin(args.name, not args.off)
        print(f"{args.name} is {'no longer' if args.off else 'now'} an admin")
    elif args.action == "set-password":
        accounts.set_password(args.name, _read_password(args.password_stdin, LabelingError))
        print(f"new password set for {args.name}; their open sessions have ended")
    return 0


def _read_password(from_stdin: bool, error: type[Exception]) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise error("no terminal to ask for a password; pass it on stdin with --password-stdin")
    password = getpass.getpass("password: ")
    if getpass.getpass("again: ") != password:
        raise error("the two passwords differ")
    return password

"""`t2i-align raters`: accounts with slow salted hashes, never a plaintext password on disk."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from align.cli import main
from labeling_app.accounts import Accounts
from labeling_app.passwords import hash_password, verify_password

T2I_ALIGN = Path(sys.executable).with_name("t2i-align")  # the console script, installed beside this Python


def raters(monkeypatch, capsys, accounts, *argv: str, stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["raters", "--accounts", str(accounts), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_set_admin_remove(tmp_path, monkeypatch, capsys):
    accounts = tmp_path / "raters.db"
    assert raters(monkeypatch, capsys, accounts, "add", "ann", "--password-stdin", stdin="correct horse\n")[0] == 0
    assert raters(monkeypatch, capsys, accounts, "add", "boss", "--admin", "--password-stdin", stdin="battery staple\n")[0] == 0
    code, out, _ = raters(monkeypatch, capsys, accounts, "list")
    assert [line.split("\t")[:2] for line in out.splitlines()] == [["ann", "rater"], ["boss", "admin"]]
    assert raters(monkeypatch, capsys, accounts, "set-admin", "ann")[0] == 0
    assert raters(monkeypatch, capsys, accounts, "set-admin", "boss", "--off")[0] == 0
    store = Accounts(accounts)
    assert store.is_admin("ann") and not store.is_admin("boss")
    assert store.verify("ann", "correct horse") and not store.verify("ann", "battery staple")
    assert raters(monkeypatch, capsys, accounts, "set-password", "boss", "--password-stdin", stdin="new password 2\n")[0] == 0
    assert store.verify("boss", "new password 2") and not store.verify("boss", "battery staple")
    assert raters(monkeypatch, capsys, accounts, "remove", "ann")[0] == 0
    assert not store.verify("ann", "correct horse")
    assert [r.name for r in store.list()] == ["boss"]


def console(accounts: Path, *argv: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([str(T2I_ALIGN), "raters", "--accounts", str(accounts), *argv], input=stdin, text=True,
                          capture_output=True, timeout=120)


def test_the_raters_console_command_adds_changes_and_removes_accounts(tmp_path):
    """The installed `t2i-align raters`, in subprocesses, as an admin types it (elsewhere tests call
    main in-process, and set up accounts through the accounts API)."""
    accounts = tmp_path / "raters.db"
    added = console(accounts, "add", "ann", "--password-stdin", stdin="correct horse\n")
    assert (added.returncode, added.stdout) == (0, f"added rater ann to {accounts}\n"), added.stderr
    added = console(accounts, "add", "boss", "--admin", "--password-stdin", stdin="battery staple\n")
    assert (added.returncode, added.stdout) == (0, f"added admin boss to {accounts}\n"), added.stderr
    store = Accounts(accounts)
    assert store.verify("ann", "correct horse") and not store.is_admin("ann")
    assert store.verify("boss", "battery staple") and store.is_admin("boss")
    assert console(accounts, "set-password", "ann", "--password-stdin", stdin="new password 2\n").returncode == 0
    assert store.verify("ann", "new password 2") and not store.verify("ann", "correct horse")
    assert console(accounts, "set-admin", "boss", "--off").returncode == 0 and not store.is_admin("boss")
    assert console(accounts, "remove", "ann").returncode == 0
    assert [line.split("\t")[:2] for line in console(accounts, "list").stdout.splitlines()] == [["boss", "rater"]]


def test_the_raters_console_command_refuses_bad_input_in_one_sentence_with_exit_2(tmp_path):
    accounts = tmp_path / "raters.db"
    assert console(accounts, "add", "ann", "--password-stdin", stdin="long enough\n").returncode == 0
    again = console(accounts, "add", "ann", "--password-stdin", stdin="long enough 2\n")
    assert again.returncode == 2 and again.stdout == ""
    assert "rater ann already exists" in again.stderr and again.stderr.count("\n") == 1, again.stderr
    assert Accounts(accounts).verify("ann", "long enough")


def test_passwords_are_stored_only_as_salted_scrypt_hashes(tmp_path, monkeypatch, capsys):
    accounts = tmp_path / "raters.db"
    raters(monkeypatch, capsys, accounts, "add", "ann", "--password-stdin", stdin="same password\n")
    raters(monkeypatch, capsys, accounts, "add", "bea", "--password-stdin", stdin="same password\n")
    on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"same password" not in on_disk
    first, second = hash_password("same password"), hash_password("same password")
    assert first != second and first.startswith("scrypt$16384$")  # salted, and costly
    assert verify_password("same password", first) and not verify_password("Same password", first)


def test_bad_account_requests_end_in_one_sentence_and_exit_2(tmp_path, monkeypatch, capsys):
    accounts = tmp_path / "raters.db"
    raters(monkeypatch, capsys, accounts, "add", "ann", "--password-stdin", stdin="long enough\n")
    cases = [
        (("add", "ann", "--password-stdin"), "long enough 2\n", "already exists"),
        (("add", "cid", "--password-stdin"), "short\n", "at least 8"),
        (("add", "../evil", "--password-stdin"), "long enough\n", "must be 1-64"),
        (("add", "ada\n", "--password-stdin"), "long enough\n", "must be 1-64"),  # `$` let a final newline in
        (("remove", "nobody"), "", "no rater named nobody"),
        (("set-admin", "nobody"), "", "no rater named nobody"),
        (("add", "dee"), "", "--password-stdin"),  # no terminal to prompt on
    ]
    for argv, stdin, message in cases:
        code, _, err = raters(monkeypatch, capsys, accounts, *argv, stdin=stdin)
        assert code == 2, argv
        assert message in err and err.count("\n") == 1, err
    assert Accounts(accounts).verify("ann", "long enough")


def test_a_login_session_lasts_while_used_and_ends_after_the_idle_time(tmp_path):
    from labeling_app.sessions import LiveSessions

    accounts = Accounts(tmp_path / "raters.db")
    accounts.add("bob", "rater-password-1")
    now = [0.0]
    sessions = LiveSessions(accounts, idle_seconds=60, clock=lambda: now[0])
    sessions["token"] = "bob"
    for _ in range(3):  # each request within the idle time keeps it alive
        now[0] += 59
        assert sessions.get("token") == "bob"
    now[0] += 61
    assert sessions.get("token") is None and "token" not in sessions
    sessions["again"] = "bob"
    accounts.remove("bob")
    assert sessions.get("again") is None

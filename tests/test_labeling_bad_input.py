"""Bad input to label / export / raters / simulate-raters: one sentence, exit code 2, nothing lost."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_run_dir, read_only

from align.cli import main
from labeling_app.store import open_run_store, wal_problem


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_sentence(err: str, *words: str) -> None:
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


def assert_label_export_and_simulate_refuse(capsys, run: Path, accounts: Path, out: Path, *words: str) -> None:
    """`label`, `export` and `simulate-raters` of `run` each end in one sentence holding `words`, exit code 2."""
    for argv in (["label", str(run), "--accounts", str(accounts)], ["export", str(run), "--out", str(out)],
                 ["simulate-raters", str(run)]):
        code, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert_one_sentence(err, *words)


def test_missing_run_dir(tmp_path, capsys, labeling_accounts):
    code, err = run_cli(capsys, "label", str(tmp_path / "nope"), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "does not exist")


def test_run_dir_without_samples(tmp_path, capsys, labeling_accounts):
    (tmp_path / "empty").mkdir()
    code, err = run_cli(capsys, "label", str(tmp_path / "empty"), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "no samples.parquet")


def test_run_dir_with_zero_samples(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 1)
    pd.read_parquet(run / "samples.parquet").iloc[:0].to_parquet(run / "samples.parquet", index=False)
    code, err = run_cli(capsys, "label", str(run), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "holds no samples")
    assert not (run / "labels.db").exists()


def test_labels_db_of_an_unknown_schema_version_is_refused_and_left_untouched(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 2)
    db = sqlite3.connect(run / "labels.db")
    db.execute("CREATE TABLE ratings (id INTEGER PRIMARY KEY, verdict TEXT)")
    db.execute("INSERT INTO ratings (verdict) VALUES ('precious')")
    db.execute("PRAGMA user_version = 7")
    db.commit()
    db.close()
    before = hashlib.sha256((run / "labels.db").read_bytes()).hexdigest()
    assert_label_export_and_simulate_refuse(capsys, run, labeling_accounts, tmp_path / "l.parquet", "schema version 7", "untouched")
    assert hashlib.sha256((run / "labels.db").read_bytes()).hexdigest() == before
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "images", "labels.db", "samples.parquet"]


def test_a_labels_db_that_is_not_sqlite_is_refused(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 2)
    (run / "labels.db").write_text("these are my notes, not a database")
    code, err = run_cli(capsys, "label", str(run), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "not an SQLite database")
    assert (run / "labels.db").read_text() == "these are my notes, not a database"


def test_corrupt_and_missing_images_are_left_out_and_logged(tmp_path, caplog):
    run = make_run_dir(tmp_path, 4)
    (run / "images" / "000001.png").write_bytes(b"not a png")
    (run / "images" / "000002.png").unlink()
    with caplog.at_level(logging.WARNING):
        store = open_run_store(run)
    assert store.sample_ids() == ["000000", "000003"]
    assert set(store.broken_samples()) == {"000001", "000002"}
    logged = caplog.text
    assert "000001" in logged and "not a readable image" in logged
    assert "000002" in logged and "missing" in logged
    assert [store.next_sample("ann"), store.next_sample("ann"), store.next_sample("ann")] == ["000000", "000003", None]


def test_label_without_any_rater_account(tmp_path, capsys):
    run = make_run_dir(tmp_path, 1)
    code, err = run_cli(capsys, "label", str(run), "--accounts", str(tmp_path / "none.db"))
    assert code == 2
    assert_one_sentence(err, "no rater accounts", "raters add")


def test_export_of_an_unrated_run_and_over_an_existing_file(tmp_path, capsys):
    run = make_run_dir(tmp_path, 1)
    code, err = run_cli(capsys, "export", str(run), "--out", str(tmp_path / "labels.parquet"))
    assert code == 2
    assert_one_sentence(err, "no labels.db")
    store = open_run_store(run)
    code, err = run_cli(capsys, "export", str(run), "--out", str(tmp_path / "labels.parquet"))
    assert code == 2
    assert_one_sentence(err, "no ratings to export")
    store.rate("ann", "000000", 1)
    (tmp_path / "labels.parquet").write_text("an earlier export")
    code, err = run_cli(capsys, "export", str(run), "--out", str(tmp_path / "labels.parquet"))
    assert code == 2
    assert_one_sentence(err, "already exists", "--overwrite")
    assert (tmp_path / "labels.parquet").read_text() == "an earlier export"


def test_an_emptied_labels_db_is_refused_not_replaced(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 2)
    (run / "labels.db").write_bytes(b"")
    for argv in (["label", str(run), "--accounts", str(labeling_accounts)], ["simulate-raters", str(run)],
                 ["export", str(run), "--out", str(tmp_path / "l.parquet")]):
        code, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert_one_sentence(err, "empty (0 bytes)", "untouched")
    assert (run / "labels.db").read_bytes() == b""


def test_a_labels_db_copied_without_its_wal_is_refused_not_replaced(tmp_path, capsys, labeling_accounts):
    """Copied while the server held it open: the ratings, and even the tables, were still in the -wal file."""
    run = make_run_dir(tmp_path, 2)
    store = open_run_store(run)
    store.rate("bob", store.next_sample("bob"), 1)
    copy = make_run_dir(tmp_path, 2, name="copy")
    (copy / "labels.db").write_bytes((run / "labels.db").read_bytes())  # the -wal file left behind
    before = (copy / "labels.db").read_bytes()
    code, err = run_cli(capsys, "label", str(copy), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "holds no tables", "-wal")
    assert (copy / "labels.db").read_bytes() == before


def test_a_labels_db_holding_only_its_meta_table_is_refused_not_changed(tmp_path, capsys, labeling_accounts):
    """It used to be diagnosed as another schema version, was then changed by `label`, and made `export`
    print a traceback."""
    run = make_run_dir(tmp_path, 2)
    with closing(sqlite3.connect(run / "labels.db")) as db, db:
        db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        db.execute("PRAGMA user_version = 1")
    before = hashlib.sha256((run / "labels.db").read_bytes()).hexdigest()
    assert_label_export_and_simulate_refuse(capsys, run, labeling_accounts, tmp_path / "l.parquet",
                                            "lacks the table(s) samples, ratings, skips, leases", "untouched")
    assert hashlib.sha256((run / "labels.db").read_bytes()).hexdigest() == before


def test_a_read_only_run_holding_a_wal_says_why_it_cannot_be_exported(tmp_path, capsys):
    """SQLite reads a -wal only by writing a -shm file beside it: in a read-only folder it cannot, and the
    sentence used to say neither why nor what to do."""
    run = make_run_dir(tmp_path, 2)
    store = open_run_store(run)
    store.rate("bob", store.next_sample("bob"), 1)  # left open: the rating is in labels.db-wal
    copy = make_run_dir(tmp_path, 2, name="copy")
    for name in ("labels.db", "labels.db-wal"):
        (copy / name).write_bytes((run / name).read_bytes())
    with read_only(copy):
        code, err = run_cli(capsys, "export", str(copy), "--out", str(tmp_path / "l.parquet"))
    assert code == 2
    assert_one_sentence(err, "-shm", "read-only", "copy labels.db together with its -wal file")
    store.close()


def rated_run(tmp_path: Path) -> Path:
    """A run with one rating, its WAL folded into labels.db and the -wal/-shm files gone, as after a clean stop."""
    run = make_run_dir(tmp_path, 4)
    store = open_run_store(run)
    store.rate("bob", store.next_sample("bob"), 1)
    store._forget_connection()
    return run


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_labels_db_with_garbage_pages_is_refused_as_damaged_and_left_untouched(tmp_path, capsys, labeling_accounts):
    run = rated_run(tmp_path)
    data = bytearray((run / "labels.db").read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    data[page_size:] = os.urandom(len(data) - page_size)  # every page after the first (header and schema)
    (run / "labels.db").write_bytes(bytes(data))
    for argv in (["label", str(run), "--accounts", str(labeling_accounts)], ["simulate-raters", str(run)],
                 ["export", str(run), "--out", str(tmp_path / "l.parquet")]):
        code, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert_one_sentence(err, "is damaged", "left untouched", ".recover")
    assert (run / "labels.db").read_bytes() == bytes(data)


def test_a_read_only_labels_db_is_named_as_such_and_still_exports(tmp_path, capsys, labeling_accounts):
    """It used to be called 'not an SQLite database; move it aside', inviting the user to throw good data away."""
    run = rated_run(tmp_path)
    before = digest(run / "labels.db")
    with read_only(run / "labels.db"):
        for argv in (["label", str(run), "--accounts", str(labeling_accounts)], ["simulate-raters", str(run)]):
            code, err = run_cli(capsys, *argv)
            assert code == 2, argv
            assert_one_sentence(err, "cannot write to", "ratings in it are safe", "writable")
            assert "not an SQLite" not in err
        code, _ = run_cli(capsys, "export", str(run), "--out", str(tmp_path / "labels.parquet"))
        assert code == 0  # exporting only reads
    assert digest(run / "labels.db") == before
    assert len(pd.read_parquet(tmp_path / "labels.parquet")) == 1


def test_a_read_only_run_dir_without_labels_db_is_refused_before_anything_is_written(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 2)
    with read_only(run):
        code, err = run_cli(capsys, "label", str(run), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "cannot write to", "read-only")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "images", "samples.parquet"]


@pytest.mark.parametrize("where", ["proc", "under a file", "a folder"])
def test_export_out_that_cannot_be_written_is_one_sentence_and_leaves_nothing(tmp_path, capsys, where):
    run = rated_run(tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "exports").mkdir()
    out = {"proc": Path("/proc/labels.parquet"), "under a file": tmp_path / "notes.txt" / "labels.parquet",
           "a folder": tmp_path / "exports"}[where]
    code, err = run_cli(capsys, "export", str(run), "--out", str(out), "--overwrite")
    assert code == 2
    assert_one_sentence(err, str(out))
    assert (tmp_path / "notes.txt").read_text() == "mine" and list((tmp_path / "exports").iterdir()) == []
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]


def test_label_on_a_port_in_use_is_refused_before_labels_db_is_made(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 2)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = run_cli(capsys, "label", str(run), "--accounts", str(labeling_accounts), "--port", str(port))
    assert code == 2
    assert_one_sentence(err, f"cannot listen on 127.0.0.1:{port}", "--port")
    assert not (run / "labels.db").exists()


@pytest.mark.parametrize("option, value, words", [
    ("--lease-seconds", "nan", "positive number of seconds"),
    ("--lease-seconds", "-5", "positive number of seconds"),
    ("--idle-minutes", "nan", "--idle-minutes must be a positive number"),
    ("--failed-logins-per-account", "0", "at least 1"),
    ("--port", "70000", "between 1 and 65535"),
])
def test_label_options_out_of_range(tmp_path, capsys, labeling_accounts, option, value, words):
    run = make_run_dir(tmp_path, 2)
    code, err = run_cli(capsys, "label", str(run), "--accounts", str(labeling_accounts), option, value)
    assert code == 2
    assert_one_sentence(err, words)
    assert not (run / "labels.db").exists()


def test_a_null_prompt_in_samples_parquet_is_one_sentence(tmp_path, capsys, labeling_accounts):
    run = make_run_dir(tmp_path, 3)
    frame = pd.read_parquet(run / "samples.parquet")
    frame.loc[1, "prompt"] = None
    frame.to_parquet(run / "samples.parquet", index=False)
    code, err = run_cli(capsys, "label", str(run), "--accounts", str(labeling_accounts))
    assert code == 2
    assert_one_sentence(err, "1 row(s) with no prompt")
    assert not (run / "labels.db").exists()


def test_a_wal_file_sqlite_cannot_read_is_warned_about_and_kept(tmp_path, capsys, caplog):
    """A -wal beside labels.db that SQLite would ignore, then overwrite at the next write: export warns
    and changes nothing; a command that writes (simulate-raters) warns and first keeps a copy."""
    live = open_run_store(make_run_dir(tmp_path, 2, name="live"))
    live.rate("bob", "000000", 1)  # its WAL is in use, whole and readable
    assert wal_problem(live.path.with_name("labels.db-wal"), page_size=4096) is None
    run = rated_run(tmp_path)
    wal = run / "labels.db-wal"
    wal.write_bytes(b"not a write-ahead log" * 100)
    with caplog.at_level(logging.WARNING):
        assert run_cli(capsys, "export", str(run), "--out", str(tmp_path / "l.parquet"))[0] == 0
        assert "labels.db-wal cannot be read with labels.db (no WAL magic number); SQLite ignores it" in caplog.text
        assert not list(run.glob("*.unreadable-*"))
        caplog.clear()
        assert run_cli(capsys, "simulate-raters", str(run))[0] == 0
    assert "so a copy was kept" in caplog.text
    (kept,) = run.glob("labels.db-wal.unreadable-*")
    assert kept.read_bytes() == b"not a write-ahead log" * 100

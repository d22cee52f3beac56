"""Bad input to label / export / raters / simulate-raters: one sentence, exit code 2, nothing lost."""

from __future__ import annotations

import hashlib
import logging
import sqlite3

import pandas as pd
from conftest import make_run_dir

from align.cli import main
from labeling_app.store import open_run_store


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_sentence(err: str, *words: str) -> None:
    assert "\n" not in err and "Traceback" not in err, err
    for word in words:
        assert word in err, err


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
    for argv in (["label", str(run), "--accounts", str(labeling_accounts)], ["export", str(run), "--out", str(tmp_path / "l.parquet")],
                 ["simulate-raters", str(run)]):
        code, err = run_cli(capsys, *argv)
        assert code == 2, argv
        assert_one_sentence(err, "schema version 7", "untouched")
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

"""`t2i-align export`: labels.parquet as the reward-model work reads it (pandas and datasets)."""

from __future__ import annotations

import os
import stat

import datasets
import pandas as pd
import pyarrow.parquet as pq
from conftest import make_run_dir

from align.cli import main
from labeling_app.store import open_run_store

COLUMNS = ["rating_id", "sample_id", "run_dir", "prompt", "category", "split", "image_path", "model", "seed",
           "rater", "rater_kind", "label", "reasons", "created_at"]


def test_export_writes_one_row_per_live_rating_across_runs(tmp_path, capsys):
    first = open_run_store(make_run_dir(tmp_path, 3, "round1"), overlap=2)
    second = open_run_store(make_run_dir(tmp_path, 2, "round2"))
    first.rate("ann", "000000", 1)
    first.rate("bea", "000000", 0, ["wrong colour", "malformed"])
    first.rate("ann", "000001", 0)
    first.undo_last("ann")  # retracted: not exported
    first.skip("ann", "000002")  # a skip is not a rating
    second.rate("sim-1", "000001", 1, kind="simulated")
    out = tmp_path / "labels.parquet"

    assert main(["export", str(first.run_dir), str(second.run_dir), "--out", str(out)]) == 0
    assert "wrote 3 ratings from 2 run(s)" in capsys.readouterr().out

    frame = pd.read_parquet(out)
    assert list(frame.columns) == COLUMNS
    assert frame[["sample_id", "rater", "rater_kind", "label"]].values.tolist() == [
        ["000000", "ann", "human", 1], ["000000", "bea", "human", 0], ["000001", "sim-1", "simulated", 1],
    ]
    assert [list(r) for r in frame["reasons"]] == [[], ["wrong colour", "malformed"], []]
    assert frame["run_dir"].tolist() == [str(first.run_dir)] * 2 + [str(second.run_dir)]
    assert all(pd.io.common.file_exists(p) for p in frame["image_path"])
    assert frame.loc[2, "image_path"] == str(second.run_dir / "images" / "000001.png")
    assert frame.loc[0, ["prompt", "category", "split", "model", "seed"]].tolist() == [
        "a red square", "count", "heldout", "tiny-sd", 0]
    assert str(frame["created_at"].dt.tz) == "UTC"

    schema = pq.read_schema(out)
    assert {str(schema.field(c).type) for c in ("rating_id", "seed", "label")} == {"int64"}
    assert str(schema.field("reasons").type) == "list<element: string>"

    dataset = datasets.Dataset.from_parquet(str(out))
    assert dataset.num_rows == 3
    assert dataset[1]["reasons"] == ["wrong colour", "malformed"]


def test_overwrite_replaces_an_earlier_export(tmp_path):
    store = open_run_store(make_run_dir(tmp_path, 2))
    out = tmp_path / "labels.parquet"
    store.rate("ann", "000000", 1)
    assert main(["export", str(store.run_dir), "--out", str(out)]) == 0
    store.rate("ann", "000001", 0)
    assert main(["export", str(store.run_dir), "--out", str(out), "--overwrite"]) == 0
    assert len(pd.read_parquet(out)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.parquet", "run"]  # no partial file left behind


def test_overwrite_replaces_only_a_regular_file_and_the_result_gets_the_umask(tmp_path, capsys):
    """The attack: `export --out X --overwrite` where X is a link, a FIFO or a device node. Each used to be
    replaced by a 0600 parquet file (as root, --out /dev/full --overwrite replaced the machine's
    /dev/full). Now each is refused in one sentence, exit 2, and left as it was."""
    store = open_run_store(make_run_dir(tmp_path, 2))
    store.rate("ann", "000000", 1)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link, dangling, fifo, device = (tmp_path / name for name in ("link", "dangling", "fifo", "full"))
    link.symlink_to(target)
    dangling.symlink_to(tmp_path / "nowhere")
    os.mkfifo(fifo)
    specials = {link: "a symbolic link", dangling: "a symbolic link", fifo: "a FIFO"}
    if os.geteuid() == 0:  # making a device node takes root; CI runs as root
        os.mknod(device, 0o600 | stat.S_IFCHR, os.makedev(1, 7))  # /dev/full's numbers
        specials[device] = "a device"
    capsys.readouterr()
    for out, kind in specials.items():
        before = out.lstat()
        assert main(["export", str(store.run_dir), "--out", str(out), "--overwrite"]) == 2
        err = capsys.readouterr().err.strip()
        assert f"is {kind}, not a regular file" in err and "\n" not in err, err
        after = out.lstat()
        assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert target.read_text() == "keep me"
    assert main(["export", str(store.run_dir), "--out", str(dangling)]) == 2  # without --overwrite: there already

    old = os.umask(0o022)
    try:
        assert main(["export", str(store.run_dir), "--out", str(tmp_path / "shared.parquet")]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "shared.parquet").stat().st_mode) == 0o644

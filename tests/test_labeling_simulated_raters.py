"""`t2i-align simulate-raters`: the oracle's verdicts, with noise, through the same store as people."""

from __future__ import annotations

from conftest import make_run_dir, write_run_dir
from PIL import ImageDraw

from align.cli import main
from align.shapes.world import COLORS, Scene, SceneObject, render
from labeling_app.store import LabelStore

# (prompt, scene, the oracle's label, the reason tags it implies)
CASES = [
    ("two red squares", Scene("white", (SceneObject("square", "red", 5, 5, 18), SceneObject("square", "red", 35, 35, 18))),
     1, []),
    ("a blue circle", Scene("white", (SceneObject("circle", "red", 20, 20, 22),)), 0, ["wrong colour"]),
    ("a triangle on a black background", Scene("white", (SceneObject("triangle", "green", 20, 20, 22),)),
     0, ["wrong background"]),
    ("three circles", Scene("gray", (SceneObject("circle", "blue", 5, 5, 16), SceneObject("circle", "blue", 40, 40, 16))),
     0, ["wrong count"]),
    ("a square", Scene("black", (SceneObject("circle", "yellow", 20, 20, 22),)), 0, ["wrong shape"]),
]


def shapes_run(tmp_path):
    return write_run_dir(tmp_path / "run", [(prompt, render(scene)) for prompt, scene, _, _ in CASES])


def verdicts(run) -> dict[tuple[str, str], tuple[int, list[str], str]]:
    return {(r["rater"], r["sample_id"]): (r["label"], r["reasons"], r["rater_kind"]) for r in LabelStore(run).live_ratings()}


def test_noiseless_raters_agree_with_the_oracle_and_give_its_reasons(tmp_path, capsys):
    run = shapes_run(tmp_path)
    assert main(["simulate-raters", str(run), "--raters", "3", "--noise", "0", "--overlap", "2"]) == 0
    assert "10 simulated ratings by 3 raters" in capsys.readouterr().out
    got = verdicts(run)
    assert len(got) == len(CASES) * 2
    for (rater, sample_id), (label, reasons, kind) in got.items():
        _, _, want_label, want_reasons = CASES[int(sample_id)]
        assert (label, reasons, kind) == (want_label, want_reasons, "simulated"), (rater, sample_id)
    assert {rater for rater, _ in got} == {"sim-1", "sim-2", "sim-3"}  # shared round robin, as people would
    # Nothing left: running again adds nothing (no rater sees a sample twice, overlap holds).
    assert main(["simulate-raters", str(run), "--raters", "3", "--noise", "0"]) == 0
    assert len(verdicts(run)) == len(CASES) * 2


def test_a_shapeless_object_is_malformed_not_a_wrong_shape(tmp_path):
    bar = render(Scene("white", ()))
    ImageDraw.Draw(bar).rectangle((10, 28, 50, 33), fill=COLORS["red"])  # 41 x 6 px: no shape's proportions
    run = write_run_dir(tmp_path / "run", [("a red square", bar)])
    assert main(["simulate-raters", str(run), "--raters", "1", "--noise", "0"]) == 0
    assert [r["reasons"] for r in LabelStore(run).live_ratings()] == [["malformed"]]


def test_noise_one_flips_every_verdict_and_noise_is_seeded(tmp_path):
    run = shapes_run(tmp_path)
    assert main(["simulate-raters", str(run), "--raters", "1", "--noise", "1"]) == 0
    assert {sid: label for (_, sid), (label, _, _) in verdicts(run).items()} == {
        f"{i:06d}": 1 - case[2] for i, case in enumerate(CASES)}

    labels = []
    for name in ("a", "b"):
        other = write_run_dir(tmp_path / name, [(p, render(s)) for p, s, _, _ in CASES])
        assert main(["simulate-raters", str(other), "--raters", "2", "--overlap", "2", "--noise", "0.5", "--seed", "7"]) == 0
        labels.append(sorted((k, v[0]) for k, v in verdicts(other).items()))
    assert len(labels[0]) == len(CASES) * 2 and labels[0] == labels[1]
    flipped = sum(label != CASES[int(sample_id)][2] for (_, sample_id), label in labels[0])
    assert 0 < flipped < len(labels[0])  # noise 0.5 really drew: some verdicts flipped, not all


def test_bad_arguments_and_non_shapes_runs_end_in_exit_2(tmp_path, capsys):
    run = make_run_dir(tmp_path, 1)
    assert main(["simulate-raters", str(run), "--noise", "1.5"]) == 2
    assert "--noise is a probability" in capsys.readouterr().err
    other = write_run_dir(tmp_path / "sd", [("a photo of an astronaut riding a horse", render(CASES[0][1]))])
    assert main(["simulate-raters", str(other)]) == 2
    assert "not a shapes-world prompt" in capsys.readouterr().err
    assert LabelStore(other).live_ratings() == []

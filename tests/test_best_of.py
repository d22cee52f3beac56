"""`t2i-align generate best_of=N reward.path=DIR`: rejection sampling with the learned reward."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli, one_sentence
from PIL import Image
from reward_helpers import rated_labels, trained_model

from align.cli import main
from reward_models.reward_model import RewardModel

QUICK = ["sampling.steps=4", "images_per_prompt=2"]


@pytest.fixture(scope="module")
def reward_dir(tmp_path_factory):
    root = tmp_path_factory.getbasetemp() / "reward-data"
    return trained_model(root, rated_labels(root))


@pytest.fixture(scope="module")
def prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("best-of") / "prompts.txt"
    path.write_text("two red circles on a black background\nthree diamonds\n")
    return path


def test_each_image_is_the_best_of_its_candidates_by_the_reward(reward_dir, prompts, tmp_path):
    out = tmp_path / "best"
    assert main(["generate", "--out", str(out), f"prompts={prompts}", *QUICK, "best_of=3", f"reward.path={reward_dir}"]) == 0
    kept, candidates = pd.read_parquet(out / "samples.parquet"), pd.read_parquet(out / "candidates/samples.parquet")
    assert len(kept) == 4 and len(candidates) == 12 and (kept["best_of"] == 3).all()

    model = RewardModel.from_pretrained(reward_dir)
    pictures = [Image.open(out / "candidates" / p).convert("RGB") for p in candidates["image_path"]]
    by_hand = model(pictures, list(candidates["prompt"])).numpy()  # score the N candidates ourselves
    np.testing.assert_allclose(candidates["reward"], by_hand, atol=1e-5)
    for row in kept.itertuples():
        mine = candidates[candidates["request"] == row.id]
        best = mine.iloc[int(np.argmax(by_hand[mine.index]))]
        assert (row.candidate_seed, row.reward) == (best["seed"], pytest.approx(best["reward"]))
        assert np.array_equal(np.asarray(Image.open(out / row.image_path)), np.asarray(Image.open(out / "candidates" / best["image_path"])))

    # Candidate 0 is the plain run's image (same seed), so best-of-n pairs seed for seed with its baseline.
    plain = tmp_path / "plain"
    assert main(["generate", "--out", str(plain), f"prompts={prompts}", *QUICK]) == 0
    assert (kept["seed"] == pd.read_parquet(plain / "samples.parquet")["seed"]).all()
    first = candidates[candidates["id"].str.endswith("-0")]
    for sample_id, path in zip(first["request"], first["image_path"]):
        assert np.array_equal(np.asarray(Image.open(out / "candidates" / path)), np.asarray(Image.open(plain / f"images/{sample_id}.png")))

    # reuse=PLAIN copies those candidates from the plain run instead of drawing them: the same result.
    reused = tmp_path / "reused"
    assert main(["generate", "--out", str(reused), f"prompts={prompts}", *QUICK, "best_of=3", f"reward.path={reward_dir}",
                 f"reuse={plain}"]) == 0
    for sample_id, path in zip(first["request"], first["image_path"]):
        assert (reused / "candidates" / path).read_bytes() == (plain / f"images/{sample_id}.png").read_bytes()
    again = pd.read_parquet(reused / "samples.parquet")
    pd.testing.assert_frame_equal(again.drop(columns="reward"), kept.drop(columns="reward"))
    np.testing.assert_allclose(again["reward"], kept["reward"], atol=1e-5)


def test_reuse_refuses_a_run_of_another_sampler(reward_dir, prompts, tmp_path):
    plain = tmp_path / "plain"
    assert main(["generate", "--out", str(plain), f"prompts={prompts}", *QUICK]) == 0
    err = one_sentence(cli("generate", "--out", str(tmp_path / "out"), f"prompts={prompts}", "sampling.steps=3",
                           "images_per_prompt=2", "best_of=2", f"reward.path={reward_dir}", f"reuse={plain}"))
    assert "was drawn with another sampling" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "words"), [
    (["best_of=0"], "'best_of' in"),
    (["best_of=2"], "needs a reward model to pick with"),
    (["best_of=2", "reward.path=/no/such/reward"], "is not a reward model directory"),
    (["reuse=/no/such/run"], "is not a run directory of `t2i-align generate`"),
])
def test_best_of_bad_input(tmp_path, args, words):
    err = one_sentence(cli("generate", "--out", str(tmp_path / "out"), *args))
    assert words in err
    assert not (tmp_path / "out").exists()


def test_reuse_never_copies_a_file_from_outside_the_reused_run(prompts, tmp_path):
    plain = tmp_path / "plain"
    assert main(["generate", "--out", str(plain), f"prompts={prompts}", *QUICK]) == 0
    secret = tmp_path / "secret.png"
    Image.new("RGB", (64, 64), "white").save(secret)
    samples = pd.read_parquet(plain / "samples.parquet")
    samples.loc[0, "image_path"] = "../secret.png"  # a planted row pointing out of the run
    samples.to_parquet(plain / "samples.parquet")
    out = tmp_path / "out"
    assert main(["generate", "--out", str(out), f"prompts={prompts}", *QUICK, f"reuse={plain}"]) == 0
    assert (out / "images/000000.png").read_bytes() != secret.read_bytes()  # drawn, not copied
    assert (out / "images/000001.png").read_bytes() == (plain / "images/000001.png").read_bytes()

"""`t2i-align generate best_of=N reward.path=DIR`: rejection sampling with the learned reward."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from reward_helpers import rated_labels, trained_model
from test_generate_evaluate import cli, one_sentence

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


@pytest.mark.parametrize(("args", "words"), [
    (["best_of=0"], "'best_of' in"),
    (["best_of=2"], "needs a reward model to pick with"),
    (["best_of=2", "reward.path=/no/such/reward"], "is not a reward model directory"),
])
def test_best_of_bad_input(tmp_path, args, words):
    err = one_sentence(cli("generate", "--out", str(tmp_path / "out"), *args))
    assert words in err
    assert not (tmp_path / "out").exists()

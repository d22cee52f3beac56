"""The pretraining command is deterministic and writes models in their libraries' formats."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from align.models import resolve
from align.shapes.pretrain import UnetCheckpoints, main, train_unet


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """Pretraining fixes torch's thread count for its own determinism; the worker's later tests keep theirs."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_quick_pretraining_is_deterministic_and_loadable(tmp_path):
    for name in ("a", "b"):
        main(["--out", str(tmp_path / name), "--work", str(tmp_path / f"work-{name}"), "--quick"])
    for relative in ("tiny-clip/open_clip_model.safetensors", "tiny-sd/unet/diffusion_pytorch_model.safetensors",
                     "tiny-sd/vae/diffusion_pytorch_model.safetensors", "tiny-sd/text_encoder/model.safetensors"):
        first, second = load_file(tmp_path / "a" / relative), load_file(tmp_path / "b" / relative)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), relative
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{tmp_path / 'a' / 'tiny-clip'}")
    assert model.visual.image_size == (64, 64)
    pipeline = StableDiffusionPipeline.from_pretrained(tmp_path / "a" / "tiny-sd")
    assert pipeline.vae.config.scaling_factor > 0
    assert (tmp_path / "a" / "tiny-sd" / "tokenizer" / "vocab.json").is_file()


def test_redoing_one_stage_assembles_the_same_pipeline_as_the_whole_run(tmp_path):
    main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--quick"])
    configs = {part: (tmp_path / "out" / "tiny-sd" / part / "config.json").read_text() for part in ("vae", "unet")}
    for stage in ("unet", "vae"):  # the other stage is loaded from WORK: no local path may reach the shipped config
        main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--quick", "--stages", stage])
        for part, text in configs.items():
            assert (tmp_path / "out" / "tiny-sd" / part / "config.json").read_text() == text, (stage, part)


def test_the_unet_stage_goes_on_from_a_given_unet(tmp_path):
    pipeline = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"))
    before = {name: tensor.clone() for name, tensor in pipeline.unet.state_dict().items()}
    unet = train_unet(tmp_path, 2, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer, start=pipeline.unet, lr=0.0)
    assert all(torch.equal(before[name], tensor) for name, tensor in unet.state_dict().items())  # a fresh UNet would differ


def test_quick_pretraining_on_loose_captions_keeps_its_caption_model_beside_the_weights(tmp_path, capsys):
    captions = Path(__file__).resolve().parents[1] / "configs" / "shapes" / "captions.yaml"
    main(["--out", str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--quick", "--captions", str(captions)])
    assert (tmp_path / "out" / "captions.yaml").read_text() and (tmp_path / "out" / "tiny-sd").is_dir()
    bad = tmp_path / "bad.yaml"
    bad.write_text("colour_neighbour: 0.1\nneighbours: {red: [crimson]}\n")
    capsys.readouterr()  # the first run's progress bars
    with pytest.raises(SystemExit) as exited:
        main(["--out", str(tmp_path / "never"), "--quick", "--captions", str(bad)])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and "unknown colour 'crimson'" in err and "\n" not in err
    assert not (tmp_path / "never").exists()


def test_the_unet_stage_resumes_from_its_checkpoint_bit_for_bit(tmp_path):
    pipeline = StableDiffusionPipeline.from_pretrained(resolve("shapes-tiny-sd"))
    parts = (pipeline.vae, pipeline.text_encoder, pipeline.tokenizer)
    straight = train_unet(tmp_path / "straight", 4, *parts)
    train_unet(tmp_path / "stopped", 2, *parts, checkpoint_every=2)  # a run stopped after its checkpoint at step 2
    resumed = train_unet(tmp_path / "stopped", 4, *parts, checkpoint_every=2, resume=True)
    assert UnetCheckpoints(tmp_path / "stopped" / "unet-checkpoints").steps() == [2, 4]
    expected = straight.state_dict()
    assert all(torch.equal(expected[name], tensor) for name, tensor in resumed.state_dict().items())

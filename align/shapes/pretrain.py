"""Deterministic pretraining of the shipped tiny models on renders of training prompts.

    python -m align.shapes.pretrain --out align/shapes/weights --captions configs/shapes/captions.yaml  # make pretrain: all stages, ~90 min on 2 cores
    python -m align.shapes.pretrain --out DIR --stages unet           # redo one stage
    python -m align.shapes.pretrain --out DIR --stages unet --resume  # go on from the UNet's last checkpoint
    python -m align.shapes.pretrain --out DIR                         # exact captions: the first world's

Stages, each on fresh renders of training-split prompts only (held-out combinations are
never shown, in captions or pixels), captioned by a caption model (align/shapes/captions.py):
exact captions by default, loose web-like ones with --captions, which is then copied beside the
weights as captions.yaml (the pre-training term of fine-tuning draws from the same data):
  clip   contrastive tiny CLIP (open_clip), saved as an open_clip `local-dir:` model;
  vae    AutoencoderKL, 64x64 images to 16x16x4 latents, with its latent scaling factor;
         L1 + L2 with object pixels weighed up, plus L1 on image gradients for sharp corners;
  unet   UNet2DConditionModel on the frozen, converted CLIP text tower, epsilon prediction
         with min-SNR weighting, 10% empty captions for classifier-free guidance, a warmed-up
         constant learning rate and EMA, a resumable checkpoint every 1,000 steps;
then the Stable Diffusion pipeline directory is assembled with a CLIPTokenizer built from
open_clip's BPE file and a DDIM scheduler. Seeds fix every random draw; with the same torch
version and thread count the weights are the same bit for bit.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file
from tqdm import tqdm
from transformers import CLIPTextModel, CLIPTokenizer

from align.config import save_config
from align.errors import BadInput
from align.shapes.captions import CaptionModel, load_caption_model
from align.shapes.prompts import PromptSpec, all_specs, scene_for
from align.shapes.tiny_models import (
    TINY_CLIP_CONFIG,
    TINY_CLIP_PREPROCESS,
    sampling_scheduler,
    text_encoder_from_open_clip,
    tiny_unet,
    tiny_vae,
    training_scheduler,
    write_clip_tokenizer,
)
from align.shapes.world import render

SEED = 0
THREADS = 2
CLIP_BATCH, CLIP_LR = 128, 1e-3
VAE_BATCH, VAE_LR = 32, 2e-3
OBJECT_PIXEL_WEIGHT = 10.0  # objects cover ~10% of a scene; weigh them up so their colours are learnt
EDGE_WEIGHT = 5.0  # L1 on image gradients: keeps corners sharp, so diamonds don't decode as circles
UNET_BATCH, UNET_LR = 32, 5e-4
UNET_WARMUP = 500  # steps of linear warm-up, then the rate stays constant
EMA_DECAY = 0.9995  # an average over about the last 2,000 steps: the plateau gate's unit
EMPTY_CAPTION_RATE = 0.1
MIN_SNR_GAMMA = 5.0


@dataclass(frozen=True)
class Steps:
    clip: int = 600
    vae: int = 2000
    unet: int = 13000
    checkpoint_every: int = 1000  # the UNet stage's: to resume, and for the learning curve


QUICK = Steps(clip=3, vae=3, unet=3, checkpoint_every=0)  # for tests of the command itself


def training_specs() -> list[PromptSpec]:
    return [spec for spec in all_specs() if not spec.heldout]


def render_batch(specs: list[PromptSpec], rng: random.Random, size: int,
                 weights: list[float] | None = None) -> tuple[torch.Tensor, list[PromptSpec]]:
    """`size` random training scenes (prompts drawn by `weights`, uniformly without) as a [-1, 1] image
    tensor, with the spec each one shows."""
    chosen = rng.choices(specs, weights, k=size) if weights else [rng.choice(specs) for _ in range(size)]
    pixels = np.stack([np.asarray(render(scene_for(spec, rng))) for spec in chosen])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return images, chosen


def bf16_autocast() -> torch.autocast:
    """bf16 where the CPU computes it natively (avx512_bf16 or AMX): there the VAE's convolutions
    at 64x64 run 1.7x faster than in fp32, with reconstructions as good (measured at 500 steps);
    weights stay fp32. Without it (AVX2 only) bf16 is emulated and a VAE step takes 13x as long
    as in fp32 (22 s against 1.7 s), so such CPUs train in fp32, and their weights differ."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private, so absent in some torch versions
    native = any(getattr(torch.cpu, check, lambda: False)() for check in checks)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=native)


def train_clip(out: Path, steps: int, captions: CaptionModel = CaptionModel()) -> open_clip.CLIP:
    torch.manual_seed(SEED)
    rng = random.Random(SEED)
    specs = training_specs()
    prompt_weights, caption_rng = captions.prompt_weights(specs), random.Random(SEED + 10)  # captions from a stream of their own
    model = open_clip.CLIP(**TINY_CLIP_CONFIG)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # the real CLIP BPE, 77 tokens
    tokens: dict[str, torch.Tensor] = {}
    mean = torch.tensor(TINY_CLIP_PREPROCESS["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(TINY_CLIP_PREPROCESS["std"]).view(1, 3, 1, 1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=CLIP_LR, weight_decay=0.1)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, CLIP_LR, total_steps=steps, pct_start=0.05)
    model.train()
    for _ in tqdm(range(steps), desc="tiny CLIP"):
        images, chosen = render_batch(specs, rng, CLIP_BATCH, prompt_weights)
        images = ((images + 1) / 2 - mean) / std
        texts = captions.texts(chosen, caption_rng)
        if new := sorted(set(texts) - tokens.keys()):
            tokens.update(zip(new, tokenizer(new)))
        text = torch.stack([tokens[t] for t in texts])
        image_features = model.encode_image(images, normalize=True)
        text_features = model.encode_text(text, normalize=True)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        # Scenes with the same caption are positives of each other, not negatives.
        same = torch.tensor([[a == b for b in texts] for a in texts], dtype=torch.float32)
        targets = same / same.sum(dim=1, keepdim=True)
        loss = (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
    model.eval()
    clip_dir = out / "tiny-clip"
    clip_dir.mkdir(parents=True, exist_ok=True)
    config = {"model_cfg": TINY_CLIP_CONFIG, "preprocess_cfg": {"size": 64, **TINY_CLIP_PREPROCESS}}
    (clip_dir / "open_clip_config.json").write_text(json.dumps(config, indent=2))
    save_file({k: v.half().contiguous() for k, v in model.state_dict().items()}, clip_dir / "open_clip_model.safetensors")
    return model


def train_vae(work: Path, steps: int) -> AutoencoderKL:
    torch.manual_seed(SEED + 1)
    rng = random.Random(SEED + 1)
    specs = training_specs()
    vae = tiny_vae()
    optimizer = torch.optim.AdamW(vae.parameters(), lr=VAE_LR)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, VAE_LR, total_steps=steps, pct_start=0.05)
    vae.train()
    for _ in tqdm(range(steps), desc="tiny VAE"):
        images, _ = render_batch(specs, rng, VAE_BATCH)
        with bf16_autocast():
            posterior = vae.encode(images).latent_dist
            reconstruction = vae.decode(posterior.sample()).sample.float()
        # the corner pixel is always background: objects are placed at least one pixel in
        is_object = (images - images[:, :, :1, :1]).abs().amax(dim=1, keepdim=True) > 0
        weights = 1.0 + (OBJECT_PIXEL_WEIGHT - 1.0) * is_object.float()
        error = (reconstruction - images).abs() + (reconstruction - images).pow(2)
        kl = posterior.kl().float().mean()
        loss = (weights * error).mean() + EDGE_WEIGHT * edge_error(reconstruction, images) + 1e-6 * kl
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    vae.eval()
    with torch.no_grad():  # scale latents to unit variance, as SD's 0.18215 does for its VAE
        images, _ = render_batch(specs, rng, 512)
        std = vae.encode(images).latent_dist.mean.std().item()
    vae.register_to_config(scaling_factor=round(1.0 / std, 5))
    vae.save_pretrained(work / "vae")
    return vae


def edge_error(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of horizontal and vertical pixel differences."""
    error = 0.0
    for dim in (2, 3):
        error = error + (reconstruction.diff(dim=dim) - images.diff(dim=dim)).abs().mean()
    return error


def train_unet(work: Path, steps: int, vae: AutoencoderKL, text_encoder: CLIPTextModel, tokenizer: CLIPTokenizer,
               start: UNet2DConditionModel | None = None, lr: float = UNET_LR, captions: CaptionModel = CaptionModel(),
               checkpoint_every: int = 0, resume: bool = False):
    """Train a fresh tiny UNet, or `start`: the shipped one further, or another architecture (experiments/unet_pretraining.py).

    The learning rate warms up, then stays constant: "N more steps" is then the same recipe run longer, and the
    EMA weights of a checkpoint every `checkpoint_every` steps trace the learning curve (experiments/world_gates.py --curve).
    With `resume`, training goes on from the latest checkpoint in work/unet-checkpoints/, bit for bit as if never stopped.
    """
    torch.manual_seed(SEED + 2)
    rng = random.Random(SEED + 2)
    specs = training_specs()
    prompt_weights, caption_rng = captions.prompt_weights(specs), random.Random(SEED + 12)  # captions from a stream of their own
    with torch.no_grad():  # the text encoder is frozen: each caption embedded once, the prompts' all at once
        exact = [spec.text for spec in specs] + [""]
        ids = tokenizer(exact, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
        embeddings = dict(zip(exact, text_encoder(ids.input_ids).last_hidden_state))

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        if new := sorted(set(texts) - embeddings.keys()):
            ids = tokenizer(new, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
            embeddings.update(zip(new, text_encoder(ids.input_ids).last_hidden_state))
        return torch.stack([embeddings[t] for t in texts])

    unet = start if start is not None else tiny_unet(text_encoder.config.hidden_size)
    ema = EMAModel(unet.parameters(), decay=EMA_DECAY, model_cls=UNet2DConditionModel, model_config=unet.config)
    noise_scheduler = training_scheduler()
    snr = noise_scheduler.alphas_cumprod / (1 - noise_scheduler.alphas_cumprod)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=lr, weight_decay=1e-2)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / UNET_WARMUP))
    generator = torch.Generator().manual_seed(SEED + 2)
    scale = vae.config.scaling_factor
    checkpoints = UnetCheckpoints(work / "unet-checkpoints")
    state = {"unet": unet, "ema": ema, "optimizer": optimizer, "schedule": schedule}
    randomness = {"rng": rng, "caption_rng": caption_rng, "generator": generator}
    done = checkpoints.restore_latest(state, randomness) if resume else 0
    unet.train()
    progress = tqdm(range(done, steps), desc="tiny UNet", initial=done, total=steps)
    for step in progress:
        images, chosen = render_batch(specs, rng, UNET_BATCH, prompt_weights)
        with torch.no_grad(), bf16_autocast():
            posterior = vae.encode(images).latent_dist
        latents = posterior.sample(generator).float() * scale
        rows = ["" if rng.random() < EMPTY_CAPTION_RATE else text for text in captions.texts(chosen, caption_rng)]
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(rows),), generator=generator)
        noisy = noise_scheduler.add_noise(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=embed(rows)).sample
        weights = torch.clamp(snr[timesteps], max=MIN_SNR_GAMMA) / snr[timesteps]
        loss = (weights * F.mse_loss(prediction, noise, reduction="none").mean(dim=(1, 2, 3))).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        ema.step(unet.parameters())
        progress.set_postfix(loss=f"{loss.item():.4f}")
        if checkpoint_every and (step + 1) % checkpoint_every == 0:
            checkpoints.save(step + 1, state, randomness)
    ema.copy_to(unet.parameters())
    unet.eval()
    unet.save_pretrained(work / "unet")
    return unet


class UnetCheckpoints:
    """The UNet stage's resumable state, one file a checkpoint: weights, EMA, optimizer, schedule and every
    random stream, written beside and renamed, so a run killed while saving leaves the previous one whole."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, step: int) -> Path:
        return self.folder / f"step-{step:06d}.pt"

    def steps(self) -> list[int]:
        return sorted(int(path.stem.removeprefix("step-")) for path in self.folder.glob("step-*.pt"))

    def save(self, step: int, state: dict, randomness: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        payload = {name: part.state_dict() for name, part in state.items()}
        payload["random"] = {"rng": randomness["rng"].getstate(), "caption_rng": randomness["caption_rng"].getstate(),
                             "generator": randomness["generator"].get_state(), "torch": torch.get_rng_state()}
        payload["step"] = step
        partial = self.path(step).with_suffix(".partial")
        torch.save(payload, partial)
        partial.rename(self.path(step))

    def restore_latest(self, state: dict, randomness: dict) -> int:
        """Load the latest checkpoint into `state` and `randomness`; the number of steps it had done (0: none)."""
        if not (steps := self.steps()):
            return 0
        payload = torch.load(self.path(steps[-1]), weights_only=False)  # our own file: it holds Python RNG states
        for name, part in state.items():
            part.load_state_dict(payload[name])
        randomness["rng"].setstate(payload["random"]["rng"])
        randomness["caption_rng"].setstate(payload["random"]["caption_rng"])
        randomness["generator"].set_state(payload["random"]["generator"])
        torch.set_rng_state(payload["random"]["torch"])
        return payload["step"]

    def ema_unet(self, step: int, config: dict) -> UNet2DConditionModel:
        """The EMA weights of the checkpoint after `step` steps, as a UNet (what the stage would ship there)."""
        unet = UNet2DConditionModel.from_config(config)
        ema = EMAModel(unet.parameters(), decay=EMA_DECAY, model_cls=UNet2DConditionModel, model_config=unet.config)
        ema.load_state_dict(torch.load(self.path(step), weights_only=False)["ema"])
        ema.copy_to(unet.parameters())
        return unet.eval()


def assemble_pipeline(out: Path, work: Path, vae, unet, text_encoder, tokenizer) -> None:
    """Write tiny-sd/ as a Stable Diffusion pipeline directory.

    UNet and VAE are stored in fp16 to stay small (diffusers loads them as fp32); the text
    encoder stays fp32 because transformers keeps a checkpoint's dtype, and its output
    dtype decides the pipeline's latent dtype.
    """
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=sampling_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    unet.to(torch.float16)
    vae.to(torch.float16)
    pipeline.save_pretrained(out / "tiny-sd")
    for name in ("vocab.json", "merges.txt"):  # what a slow CLIPTokenizer (transformers 4) reads
        (out / "tiny-sd" / "tokenizer" / name).write_bytes((work / "tokenizer" / name).read_bytes())


def save_with_unet(source: Path, unet: UNet2DConditionModel, pipeline_dir: Path) -> None:
    """Write `pipeline_dir`: the pipeline directory `source` with `unet` in place of its own, stored in fp16
    as assemble_pipeline stores it; written beside and then renamed, so a stopped run leaves no half pipeline."""
    partial = pipeline_dir.with_name(pipeline_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    shutil.rmtree(partial / "unet")
    unet.to(torch.float16).save_pretrained(partial / "unet")
    partial.rename(pipeline_dir)


def load_stage(model_class, folder: Path):
    """A stage's fp32 output saved in WORK by an earlier run. from_pretrained would record `folder` in the
    model's config (`_name_or_path`) and the assembled pipeline would ship that local path; built from its
    config and weights, the pipeline is the same whichever stages this run trained."""
    model = model_class.from_config(model_class.load_config(folder))
    model.load_state_dict(load_file(folder / "diffusion_pytorch_model.safetensors"))
    return model.eval()


def load_clip(out: Path) -> open_clip.CLIP:
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out / 'tiny-clip'}")
    return model.float().eval()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where tiny-clip/ and tiny-sd/ are written")
    parser.add_argument("--work", type=Path, default=Path("build/pretrain"), help="fp32 stage outputs")
    parser.add_argument("--stages", default="clip,vae,unet", help="comma-separated subset of clip,vae,unet")
    parser.add_argument("--quick", action="store_true", help="3 steps per stage, to test the command")
    parser.add_argument("--resume", action="store_true", help="the UNet stage goes on from its latest checkpoint in --work")
    parser.add_argument("--captions", type=Path, default=None,
                        help="caption model YAML (configs/shapes/captions.yaml: loose, web-like); default exact captions")
    args = parser.parse_args(argv)
    try:
        captions = load_caption_model(args.captions)
    except BadInput as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    stages = set(args.stages.split(","))
    steps = QUICK if args.quick else Steps()
    torch.set_num_threads(THREADS)
    out, work = args.out, args.work
    if not captions.is_exact or captions.rare_pairs:
        out.mkdir(parents=True, exist_ok=True)
        save_config(captions, out / "captions.yaml")
    if "clip" in stages:
        train_clip(out, steps.clip, captions)
    clip = load_clip(out)  # the shipped fp16 weights, so the SD text encoder is exactly their conversion
    tokenizer = write_clip_tokenizer(open_clip.tokenizer.default_bpe(), work / "tokenizer")
    text_encoder = text_encoder_from_open_clip(clip)
    vae = train_vae(work, steps.vae) if "vae" in stages else load_stage(AutoencoderKL, work / "vae")
    unet = (
        train_unet(work, steps.unet, vae, text_encoder, tokenizer, captions=captions,
                   checkpoint_every=steps.checkpoint_every, resume=args.resume)
        if "unet" in stages
        else load_stage(UNet2DConditionModel, work / "unet")
    )
    assemble_pipeline(out, work, vae, unet, text_encoder, tokenizer)
    print(f"wrote {out / 'tiny-clip'} and {out / 'tiny-sd'}")


if __name__ == "__main__":
    main()

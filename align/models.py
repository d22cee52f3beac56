"""Where models come from: shipped names, local directories, or Hugging Face Hub ids.

    shapes-tiny-sd     the shipped tiny Stable Diffusion pipeline (align/shapes/weights/tiny-sd)
    shapes-tiny-clip   the shipped tiny CLIP, an open_clip local-dir model
    ./some/dir         a local diffusers pipeline directory
    org/name           a hub id, e.g. runwayml/stable-diffusion-v1-5 (needs the network)
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from align.errors import BadInput

WEIGHTS = Path(__file__).resolve().parent / "shapes" / "weights"
SHIPPED = {"shapes-tiny-sd": WEIGHTS / "tiny-sd", "shapes-tiny-clip": WEIGHTS / "tiny-clip"}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")  # fullmatch: a `$` would let a final newline in
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve(reference: str) -> str:
    """A shipped name or existing directory becomes an absolute path; a hub id stays as it is."""
    if reference in SHIPPED:
        path = SHIPPED[reference]
        if not path.is_dir():
            raise BadInput(f"shipped model {reference} is missing at {path}; run `make pretrain`")
        return str(path)
    path = Path(reference).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if _HUB_ID.fullmatch(reference) and not reference.startswith((".", "/")):
        return reference
    raise BadInput(f"model path {reference} does not exist")


def pick_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def load_pipeline(reference: str, dtype: str | dict[str, str] = "float32", device: str = "auto", lora: str | None = None):
    """A diffusers StableDiffusionPipeline, by name, directory or hub id; no safety checker;
    with `lora`, LoRA weights (a directory from `t2i-align finetune`) on top. `dtype` names one
    dtype for every component or one per component ({"unet": "float32", "default": "bfloat16"}):
    components are loaded in their dtype, since casting them afterwards makes diffusers warn."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()  # "Loading pipeline components" bars: the project prints its own progress
    transformers_logging.disable_progress_bar()
    source = resolve(reference)
    dtypes = {name: DTYPES[value] for name, value in dtype.items()} if isinstance(dtype, dict) else DTYPES[dtype]
    try:
        pipeline = StableDiffusionPipeline.from_pretrained(
            source, dtype=dtypes, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, EnvironmentError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInput(f"could not load the Stable Diffusion pipeline '{reference}': {reason}") from None
    if lora is not None:
        # The project's LoRA is the UNet's only; diffusers would say so about the text encoder on every load.
        verbosity = diffusers_logging.get_verbosity()
        diffusers_logging.set_verbosity_error()
        try:
            pipeline.load_lora_weights(lora)
            # merged into the weights: sampling then costs what the base model's does (benchmarks/cpu_speedups.py)
            pipeline.fuse_lora()
            pipeline.unload_lora_weights()
        except (OSError, ValueError, EnvironmentError) as exc:
            raise BadInput(f"could not load LoRA weights from {lora}: {(str(exc).strip().splitlines() or [type(exc).__name__])[0]}") from None
        finally:
            diffusers_logging.set_verbosity(verbosity)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(pick_device(device))


def native_image_size(pipeline) -> int:
    """The side in pixels a pipeline draws by default: its UNet's latent size times the VAE's scale."""
    return pipeline.unet.config.sample_size * pipeline.vae_scale_factor


def shipped_tiny_clip() -> str:
    """The shipped tiny CLIP's folder: the entry point that lets reward_models load it by name
    (pyproject.toml, group reward_models.named_backbones)."""
    return resolve("shapes-tiny-clip")


def clip_backbone_config(reference: str, pretrained: str | None = None):
    """A reward_models BackboneConfig for a shipped CLIP name (kept as the name), an open_clip name, or a local dir."""
    from reward_models.backbones import BackboneConfig

    return BackboneConfig(kind="open_clip", name=reference, pretrained=None if reference in SHIPPED else pretrained)

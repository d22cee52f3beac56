"""LoRA on the UNet with peft, saved the diffusers way so `pipe.load_lora_weights(dir)` reads it."""

from __future__ import annotations

from pathlib import Path

import torch

from align.finetune.config import LoraSettings


def add_lora(unet, settings: LoraSettings) -> list[torch.nn.Parameter]:
    """Freeze the UNet, attach a LoRA adapter, and return the adapter's parameters (float32)."""
    from peft import LoraConfig

    unet.requires_grad_(False)
    unet.add_adapter(
        LoraConfig(r=settings.rank, lora_alpha=settings.alpha, init_lora_weights="gaussian", target_modules=list(settings.targets))
    )
    params = [p for p in unet.parameters() if p.requires_grad]
    for p in params:
        p.data = p.data.float()  # trainable weights stay float32 under fp16/bf16 autocast
    return params


def lora_state(unet) -> dict[str, torch.Tensor]:
    """peft's own keys (lora_A / lora_B), which load_lora_weights reads for every layer type. Not
    diffusers' convert_state_dict_to_diffusers: it renames only the attention projections, and a
    file mixing both spellings loads without its attention layers."""
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(unet)


def save_lora(unet, directory: str | Path) -> None:
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline.save_lora_weights(
        directory,
        unet_lora_layers=lora_state(unet),
        unet_lora_adapter_metadata=unet.peft_config["default"].to_dict(),  # rank and alpha, for load_lora_weights
        safe_serialization=True,
    )


def load_lora_into(unet, directory: str | Path) -> None:
    """Load LoRA weights saved by save_lora into a UNet that already has the adapter (resume)."""
    from diffusers import StableDiffusionPipeline
    from diffusers.utils import convert_unet_state_dict_to_peft
    from peft.utils import set_peft_model_state_dict

    state, _ = StableDiffusionPipeline.lora_state_dict(str(directory))
    unet_state = {k.removeprefix("unet."): v for k, v in state.items() if k.startswith("unet.")}
    result = set_peft_model_state_dict(unet, convert_unet_state_dict_to_peft(unet_state), adapter_name="default")
    if result.unexpected_keys:
        raise RuntimeError(f"LoRA weights in {directory} do not fit this UNet: {result.unexpected_keys[0]}")

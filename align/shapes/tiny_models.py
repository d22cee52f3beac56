"""Architectures of the shipped tiny models, in the real formats, and the text-tower conversion.

- tiny CLIP: an open_clip CLIP (ViT image tower, transformer text tower) over 64x64 images
  and the real CLIP BPE vocabulary, saved as an open_clip `local-dir:` model;
- tiny Stable Diffusion: AutoencoderKL (x4 down to 16x16x4 latents), UNet2DConditionModel
  with cross-attention, the tiny CLIP's text tower converted to a transformers
  CLIPTextModel, a CLIPTokenizer built from open_clip's BPE file, and DDIM.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from align.shapes.world import IMAGE_SIZE

CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408
START_OF_TEXT, END_OF_TEXT = "<|startoftext|>", "<|endoftext|>"

TINY_CLIP_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 4, "width": 128, "head_width": 32, "patch_size": 8},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": VOCAB_SIZE, "width": 64, "heads": 4, "layers": 3},
}
# OpenAI CLIP's normalisation, as for the real model; images are resized to 64 px.
TINY_CLIP_PREPROCESS = {
    "mean": [0.48145466, 0.4578275, 0.40821073],
    "std": [0.26862954, 0.26130258, 0.27577711],
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}

# Stable Diffusion v1.5's noise schedule.
NOISE_SCHEDULE = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "prediction_type": "epsilon",
}


def write_clip_tokenizer(bpe_path: str | Path, out_dir: str | Path) -> CLIPTokenizer:
    """CLIPTokenizer files (vocab.json, merges.txt) from open_clip's bpe_simple_vocab_16e6.txt.gz.

    The vocabulary is laid out as OpenAI's CLIP builds it: 256 byte tokens, the same with
    an end-of-word mark, one token per merge, then the two special tokens.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = gzip.open(bpe_path, "rt", encoding="utf-8").read().split("\n")
    merge_count = VOCAB_SIZE - 2 * 256 - 2
    merges = [tuple(line.split()) for line in lines[1 : 1 + merge_count]]
    byte_tokens = list(_bytes_to_unicode().values())
    tokens = byte_tokens + [t + "</w>" for t in byte_tokens] + ["".join(m) for m in merges]
    tokens += [START_OF_TEXT, END_OF_TEXT]
    assert len(tokens) == VOCAB_SIZE
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    tokenizer = CLIPTokenizer.from_pretrained(
        out,
        bos_token=START_OF_TEXT,
        eos_token=END_OF_TEXT,
        unk_token=END_OF_TEXT,
        pad_token=END_OF_TEXT,
        model_max_length=CONTEXT_LENGTH,
    )
    tokenizer.save_pretrained(out)
    return tokenizer


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP's reversible map from bytes to printable unicode characters."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def text_encoder_from_open_clip(clip_model) -> CLIPTextModel:
    """The open_clip text tower as a transformers CLIPTextModel with identical outputs.

    Stable Diffusion conditions on the last hidden state after the final layer norm, which
    is what this model's `last_hidden_state` is.
    """
    cfg = TINY_CLIP_CONFIG["text_cfg"]
    width = cfg["width"]
    config = CLIPTextConfig(
        vocab_size=cfg["vocab_size"],
        hidden_size=width,
        intermediate_size=4 * width,
        num_hidden_layers=cfg["layers"],
        num_attention_heads=cfg["heads"],
        max_position_embeddings=cfg["context_length"],
        projection_dim=TINY_CLIP_CONFIG["embed_dim"],
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
    )
    source = clip_model.state_dict()
    state = {
        "embeddings.token_embedding.weight": source["token_embedding.weight"],
        "embeddings.position_embedding.weight": source["positional_embedding"],
        "final_layer_norm.weight": source["ln_final.weight"],
        "final_layer_norm.bias": source["ln_final.bias"],
    }
    for i in range(cfg["layers"]):
        block, layer = f"transformer.resblocks.{i}.", f"encoder.layers.{i}."
        for kind in ("weight", "bias"):
            q, k, v = source[block + f"attn.in_proj_{kind}"].chunk(3)
            state[layer + f"self_attn.q_proj.{kind}"] = q
            state[layer + f"self_attn.k_proj.{kind}"] = k
            state[layer + f"self_attn.v_proj.{kind}"] = v
            state[layer + f"self_attn.out_proj.{kind}"] = source[block + f"attn.out_proj.{kind}"]
            state[layer + f"layer_norm1.{kind}"] = source[block + f"ln_1.{kind}"]
            state[layer + f"layer_norm2.{kind}"] = source[block + f"ln_2.{kind}"]
            state[layer + f"mlp.fc1.{kind}"] = source[block + f"mlp.c_fc.{kind}"]
            state[layer + f"mlp.fc2.{kind}"] = source[block + f"mlp.c_proj.{kind}"]
    model = CLIPTextModel(config)
    # transformers 4 nests the weights under "text_model.", transformers 5 does not.
    prefix = "text_model." if any(k.startswith("text_model.") for k in model.state_dict()) else ""
    missing, unexpected = model.load_state_dict({prefix + k: v for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"text tower conversion left keys unmatched: {missing or unexpected}")
    return model.eval()


def tiny_vae() -> AutoencoderKL:
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 3,
        up_block_types=("UpDecoderBlock2D",) * 3,
        block_out_channels=(16, 32, 64),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=IMAGE_SIZE,
    )


def tiny_unet(cross_attention_dim: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=IMAGE_SIZE // 4,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        # Cross-attention at 8x8 and 4x4 only: attention over 16x16 latents costs most on a CPU.
        block_out_channels=(32, 64, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=cross_attention_dim,
        attention_head_dim=8,
        norm_num_groups=16,
    )


def training_scheduler() -> DDPMScheduler:
    return DDPMScheduler(**NOISE_SCHEDULE)


def sampling_scheduler() -> DDIMScheduler:
    return DDIMScheduler(**NOISE_SCHEDULE, set_alpha_to_one=False, steps_offset=1)

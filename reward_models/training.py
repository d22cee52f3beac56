"""Training the reward head on rated samples, with early stopping and held-out metrics.

The head sees [image, text, image * text] embeddings (and, as an option, the image's patch
tokens) and learns the raters' thumbs up / down (BCE or MSE, optionally class-balanced) and,
from the reason tags of the ratings that carry them, whether each attribute is right (masked
BCE, weighted by `train.attribute_weight`; see labels.attribute_targets). Lee et al.'s
auxiliary task: for a positively rated sample, the true prompt must outscore perturbed prompts (wrong count, colour, background),
a cross-entropy over [true, perturbed...] rewards weighted by `train.aux_weight`. The
perturbations come from the caller, since only it knows its prompt world.

With a frozen backbone the embeddings come from the cache once, so an epoch is a few matrix
products; with unfrozen blocks every batch goes through the backbone.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm import tqdm

from reward_models.backbones import ClipBackbone
from reward_models.config import RewardConfig, TrainConfig
from reward_models.embedding_cache import EmbeddingCache
from reward_models.errors import RewardModelError
from reward_models.head import combine
from reward_models.labels import ATTRIBUTES, split_prompts, training_rows
from reward_models.metrics import best_threshold, fit_platt, platt_probabilities, score_metrics
from reward_models.reward_model import RewardModel, probabilities

Perturb = Callable[[str], list[str]]


@dataclass
class Features:
    """Every image and text the run needs, indexed, with frozen-backbone embeddings."""

    image_paths: list[str]
    texts: list[str]
    image_embeddings: torch.Tensor
    text_embeddings: torch.Tensor
    image_index: dict[str, int] = field(init=False)
    text_index: dict[str, int] = field(init=False)

    def __post_init__(self):
        self.image_index = {p: i for i, p in enumerate(self.image_paths)}
        self.text_index = {t: i for i, t in enumerate(self.texts)}


@dataclass
class TrainingResult:
    model: RewardModel
    without_aux: RewardModel | None
    splits: dict[str, list[str]]
    predictions: pd.DataFrame  # held-out ratings with reward, CLIP score and labels
    metrics: dict


def embed_everything(labels: pd.DataFrame, texts_by_run: dict[str, list[str]], cache: EmbeddingCache) -> Features:
    """Image and text embeddings from each run directory's cache, computing only what is new."""
    images: dict[str, torch.Tensor] = {}
    texts: dict[str, torch.Tensor] = {}
    for run_dir, part in labels.groupby("run_dir", sort=True):
        paths = list(dict.fromkeys(part["image_path"]))
        images.update(zip(paths, cache.image_embeddings(run_dir, paths)))
        run_texts = list(dict.fromkeys(texts_by_run[run_dir]))
        texts.update(zip(run_texts, cache.text_embeddings(run_dir, run_texts)))
    return Features(list(images), list(texts), torch.stack(list(images.values())), torch.stack(list(texts.values())))


def clip_score_of(features: Features, image_paths, prompts) -> np.ndarray:
    """CLIP score (100 x max(cos, 0)) from cached embeddings, as reward_models.clip_score defines it."""
    images = features.image_embeddings[[features.image_index[p] for p in image_paths]]
    images = images[:, 0] if images.ndim == 3 else images  # the pooled row of pooled + patch features
    texts = features.text_embeddings[[features.text_index[t] for t in prompts]]
    return (100 * (images * texts).sum(-1).clamp(min=0)).numpy()


class HeadTrainer:
    """One training run of the head (and unfrozen blocks, if any) for a given aux weight."""

    def __init__(self, config: RewardConfig, rows: pd.DataFrame, features: Features, perturbations: dict[str, list[str]],
                 device: torch.device, progress: bool = True):
        self.config, self.train_config = config, config.train
        self.features, self.device, self.progress = features, device, progress
        self.rows = rows
        self.image_idx = torch.tensor([features.image_index[p] for p in rows["image_path"]])
        self.text_idx = torch.tensor([features.text_index[t] for t in rows["prompt"]])
        self.target = torch.tensor(rows["target"].to_numpy(), dtype=torch.float32)
        self.attribute_target = torch.tensor(rows[[f"target_{a}" for a in ATTRIBUTES]].to_numpy(), dtype=torch.float32)
        self.weight = self._class_weights(rows)
        self.aux_idx, self.has_aux = self._aux_indices(rows, perturbations)

    def _class_weights(self, rows: pd.DataFrame) -> torch.Tensor:
        if not self.train_config.class_balance:
            return torch.ones(len(rows))
        positive = float(rows.loc[rows["part"] == "train", "target"].mean())
        return self.target * (0.5 / positive) + (1 - self.target) * (0.5 / (1 - positive))

    def _aux_indices(self, rows: pd.DataFrame, perturbations: dict[str, list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """K perturbed prompts per positive row, drawn with a seeded generator."""
        k = self.train_config.aux_perturbations
        rng = random.Random(self.train_config.seed)
        aux = torch.zeros(len(rows), k, dtype=torch.long)
        has = torch.zeros(len(rows), dtype=torch.bool)
        for i, (prompt, target) in enumerate(zip(rows["prompt"], rows["target"])):
            options = perturbations.get(prompt, [])
            if target >= 0.5 and options:
                picks = rng.sample(options, k) if len(options) >= k else rng.choices(options, k=k)
                aux[i] = torch.tensor([self.features.text_index[t] for t in picks])
                has[i] = True
        return aux, has

    def embeddings(self, model: RewardModel, image_idx: torch.Tensor, text_idx: torch.Tensor):
        if not model.backbone.trainable:
            return self.features.image_embeddings[image_idx].to(self.device), self.features.text_embeddings[text_idx].to(self.device)
        return model.backbone.encode_pixels(self.pixels[image_idx], model.uses_patches), model.backbone.encode_texts(
            [self.features.texts[i] for i in text_idx.tolist()])

    def loss(self, model: RewardModel, rows: torch.Tensor, aux_weight: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(thumbs loss + weighted attribute loss, aux loss) on the rows with these indices."""
        images, texts = self.embeddings(model, self.image_idx[rows], self.text_idx[rows])
        outputs = model.head(images, texts)
        logits = outputs[:, 0]
        target, weight = self.target[rows].to(self.device), self.weight[rows].to(self.device)
        if self.train_config.loss == "bce":
            main = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).mean()
        else:
            main = ((torch.sigmoid(logits) - target) ** 2 * weight).mean()
        if outputs.shape[1] > 1 and self.train_config.attribute_weight > 0:
            attribute_target = self.attribute_target[rows].to(self.device)
            known = ~attribute_target.isnan()
            if known.any():
                per_entry = F.binary_cross_entropy_with_logits(outputs[:, 1:], attribute_target.nan_to_num(), reduction="none")
                main = main + self.train_config.attribute_weight * per_entry[known].mean()
        aux = torch.zeros((), device=self.device)
        positives = rows[self.has_aux[rows]]
        if aux_weight > 0 and len(positives):
            position = self.has_aux[rows].to(self.device)
            k = self.aux_idx.shape[1]
            wrong_idx = self.aux_idx[positives].reshape(-1)
            pos_images = images[position]
            _, wrong_texts = self.embeddings(model, self.image_idx[positives].repeat_interleave(k), wrong_idx)
            wrong = model.head.reward(pos_images.repeat_interleave(k, dim=0), wrong_texts).view(-1, k)
            reward = combine(outputs[position], model.head_config.combine)
            candidates = torch.cat([reward.unsqueeze(1), wrong], dim=1)
            aux = F.cross_entropy(candidates, torch.zeros(len(candidates), dtype=torch.long, device=self.device))
        return main, aux

    def fit(self, aux_weight: float) -> tuple[RewardModel, dict]:
        threads = torch.get_num_threads()
        if not self.config.backbone.unfreeze_last_blocks:
            torch.set_num_threads(1)  # a head's matmuls are tiny: thread hand-offs cost more than they save
        try:
            return self._fit(aux_weight)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, aux_weight: float) -> tuple[RewardModel, dict]:
        config = self.train_config
        torch.manual_seed(config.seed)
        model = RewardModel(ClipBackbone(self.config.backbone, self.device), self.config.head,
                            self.features.image_embeddings.shape[-1])
        if model.backbone.trainable and not hasattr(self, "pixels"):
            self.pixels = self._load_pixels(model.backbone)
        parameters = list(model.head.parameters()) + list(model.backbone.trainable_parameters().values())
        optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        parts = self.rows["part"].to_numpy()
        train_rows = torch.from_numpy(np.flatnonzero(parts == "train"))
        val_rows = torch.from_numpy(np.flatnonzero(parts == "val"))
        generator = torch.Generator().manual_seed(config.seed)
        best, best_state, stale, history = float("inf"), None, 0, []
        start = time.perf_counter()
        epochs = tqdm(range(config.max_epochs), desc=f"training head (aux weight {aux_weight:g})", unit="epoch",
                      disable=not self.progress)
        for epoch in epochs:
            model.train()
            order = train_rows[torch.randperm(len(train_rows), generator=generator)]
            for batch in order.split(config.batch_size):
                main, aux = self.loss(model, batch, aux_weight)
                optimizer.zero_grad()
                (main + aux_weight * aux).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                val_loss = float(self.loss(model, val_rows, 0.0)[0])
            history.append(val_loss)
            epochs.set_postfix(val_loss=f"{val_loss:.4f}")
            if val_loss < best - 1e-5:
                best, best_state, stale = val_loss, copy.deepcopy(model.trainable_state()), 0
            else:
                stale += 1
                if stale >= config.patience:
                    break
        seconds = time.perf_counter() - start
        epochs.close()
        model.head.load_state_dict({k[5:]: v for k, v in best_state.items() if k.startswith("head.")})
        if model.backbone.trainable:
            model.backbone.model.load_state_dict({k[9:]: v for k, v in best_state.items() if k.startswith("backbone.")},
                                                 strict=False)
        log = {"aux_weight": aux_weight, "epochs": len(history), "best_epoch": int(np.argmin(history)) + 1,
               "best_val_loss": best, "seconds": seconds, "val_loss": history}
        return model.eval(), log

    def _load_pixels(self, backbone: ClipBackbone) -> torch.Tensor:
        batches = []
        paths = self.features.image_paths
        for start in tqdm(range(0, len(paths), 64), desc="preprocessing images", disable=not self.progress):
            images = []
            for path in paths[start : start + 64]:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            batches.append(backbone.pixels(images))
        return torch.cat(batches)


@torch.no_grad()
def outputs_for(model: RewardModel, trainer: HeadTrainer, image_paths, prompts) -> torch.Tensor:
    """The head's logits, N x (1 + attributes)."""
    features = trainer.features
    image_idx = torch.tensor([features.image_index[p] for p in image_paths], dtype=torch.long)
    text_idx = torch.tensor([features.text_index[t] for t in prompts], dtype=torch.long)
    outputs = [model.head(*trainer.embeddings(model, i, t)) for i, t in zip(image_idx.split(256), text_idx.split(256))]
    return torch.cat(outputs).cpu() if outputs else torch.zeros(0, model.head.similarity.out_features)


def rewards_for(model: RewardModel, trainer: HeadTrainer, image_paths, prompts) -> np.ndarray:
    return combine(outputs_for(model, trainer, image_paths, prompts), model.head_config.combine).numpy()


def aux_accuracy(model: RewardModel, trainer: HeadTrainer, samples: pd.DataFrame, perturbations: dict[str, list[str]]) -> float | None:
    """Share of positive samples whose true prompt outscores every perturbation of it."""
    wins = []
    for path, prompt in zip(samples["image_path"], samples["prompt"]):
        options = perturbations.get(prompt, [])
        if options:
            scores = rewards_for(model, trainer, [path] * (len(options) + 1), [prompt, *options])
            wins.append(bool(scores[0] > scores[1:].max()))
    return float(np.mean(wins)) if wins else None


def heldout_metrics(labels: pd.DataFrame, reward: np.ndarray, clip: np.ndarray, clip_threshold: float,
                    platt: tuple[float, float], truth: str) -> dict:
    """Reward and CLIP score against one kind of truth (raters' labels or the oracle's verdict)."""
    truths = labels[truth].to_numpy().astype(int)
    categories, prompts = labels["category"].to_numpy(), labels["prompt"].to_numpy()
    return {
        "reward": score_metrics(reward, 1 / (1 + np.exp(-reward)), truths, 0.0, categories, prompts),
        "clip_score": score_metrics(clip, platt_probabilities(clip, platt), truths, clip_threshold, categories, prompts),
    }


def train_reward_model(labels: pd.DataFrame, config: RewardConfig, device: torch.device,
                       perturb: Perturb | None = None, progress: bool = True) -> TrainingResult:
    """Split by prompt, embed once, train (and the no-aux comparison), measure on held-out prompts."""
    train_config: TrainConfig = config.train
    if train_config.aux_weight > 0 and perturb is None:
        raise RewardModelError("the auxiliary task needs prompt perturbations for this prompt world; set train.aux_weight=0")
    splits = split_prompts(labels, train_config.val_fraction, train_config.heldout_fraction, train_config.seed)
    part_of = {p: part for part, prompts in splits.items() for p in prompts}
    labels = labels.assign(part=labels["prompt"].map(part_of))
    train_labels = labels[labels["part"] == "train"]["label"]
    if train_labels.nunique() < 2:
        raise RewardModelError("the training prompts' ratings are all of one class; a reward model needs both")
    perturbations = {p: perturb(p) for p in labels["prompt"].unique()} if perturb else {}
    texts_by_run = {
        run: list(part["prompt"].unique()) + [t for p in part["prompt"].unique() for t in perturbations.get(p, [])]
        for run, part in labels.groupby("run_dir")
    }
    backbone = ClipBackbone(replace(config.backbone, unfreeze_last_blocks=0), device)
    patches = config.head.image_features == "patches"
    features = embed_everything(labels, texts_by_run, EmbeddingCache(backbone, train_config.encode_batch_size, patches))
    rows = training_rows(labels, train_config.ratings)
    trainer = HeadTrainer(config, rows, features, perturbations, device, progress)

    model, log = trainer.fit(train_config.aux_weight)
    without_aux, log_without = None, None
    if train_config.aux_weight > 0 and train_config.compare_without_aux:
        without_aux, log_without = trainer.fit(0.0)

    fitting = labels[labels["part"] != "test"]
    fit_clip = clip_score_of(features, fitting["image_path"], fitting["prompt"])
    clip_threshold, platt = best_threshold(fit_clip, fitting["label"].to_numpy()), fit_platt(fit_clip, fitting["label"].to_numpy())

    def scored(part: str) -> pd.DataFrame:
        frame = labels[labels["part"] == part].copy()
        frame["clip_score"] = clip_score_of(features, frame["image_path"], frame["prompt"])
        outputs = outputs_for(model, trainer, frame["image_path"], frame["prompt"])
        frame["reward"] = combine(outputs, model.head_config.combine).numpy()
        for name, probability in probabilities(outputs).items():
            frame[f"p_{name}"] = probability.numpy()
        if without_aux is not None:
            frame["reward_without_aux"] = rewards_for(without_aux, trainer, frame["image_path"], frame["prompt"])
        return frame

    test, validation = scored("test"), scored("val")

    def measured(column: str, frame: pd.DataFrame = test) -> dict:
        result = {"raters": heldout_metrics(frame, frame[column].to_numpy(),
                                            frame["clip_score"].to_numpy(), clip_threshold, platt, "label")}
        if "oracle_label" in frame:
            samples = frame.drop_duplicates("image_path")
            result["oracle"] = heldout_metrics(samples, samples[column].to_numpy(), samples["clip_score"].to_numpy(),
                                               clip_threshold, platt, "oracle_label")
        return result

    truth = "oracle_label" if "oracle_label" in test else "label"
    positive_samples = test.groupby("image_path").agg(prompt=("prompt", "first"), truth=(truth, "mean")).reset_index()
    positive_samples = positive_samples[positive_samples["truth"] >= 0.5]

    metrics = {
        "heldout": measured("reward"),
        "validation": measured("reward", validation),  # seen prompts, but used for early stopping
        "aux_accuracy": aux_accuracy(model, trainer, positive_samples, perturbations),
        "training": log,
        "head_training_seconds": log["seconds"],
        "clip_score_threshold": clip_threshold,
        "clip_score_platt": list(platt),
        "data": data_counts(labels, rows),
        "backbone_fingerprint": backbone.fingerprint(),
    }
    if without_aux is not None:
        metrics["without_aux"] = {
            "heldout": measured("reward_without_aux"),
            "aux_accuracy": aux_accuracy(without_aux, trainer, positive_samples, perturbations),
            "training": log_without,
        }
    model.metrics = metrics
    if without_aux is not None:
        without_aux.metrics = metrics["without_aux"]
    return TrainingResult(model, without_aux, splits, test.drop(columns=["part"]), metrics)


def data_counts(labels: pd.DataFrame, rows: pd.DataFrame) -> dict:
    counts = {
        "ratings": len(labels),
        "samples": int(labels["image_path"].nunique()),
        "raters": int(labels["rater"].nunique()),
        "positive_rate": float(labels["label"].mean()),
        "training_rows": len(rows),
    }
    for part in ("train", "val", "test"):
        inside = labels[labels["part"] == part]
        counts[part] = {"prompts": int(inside["prompt"].nunique()), "samples": int(inside["image_path"].nunique()),
                        "ratings": len(inside), "by_category": {c: int(n) for c, n in inside["category"].value_counts().items()}}
    if "oracle_label" in labels:
        per_sample = labels.drop_duplicates("image_path")
        counts["oracle_positive_rate"] = float(per_sample["oracle_label"].mean())
        counts["rater_agreement_with_oracle"] = float((labels["label"] == labels["oracle_label"]).mean())
    return counts

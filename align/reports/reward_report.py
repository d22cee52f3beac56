"""report.html: the learned reward against CLIP score on held-out prompts, in one offline file.

Scores are recomputed for the given label file (through the embedding cache), so the report
describes exactly those ratings; the training-time numbers (aux task, thresholds, data
split) come from the reward model directory.

Every value that comes from a run directory passes through the standard library's html.escape;
the page is assembled from f-string fragments, not a template, so Jinja2's autoescape would
mean rewriting it rather than moving it.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from align.errors import BadInput
from align.reports.best_of_curves import curves, pools_table, scored_pools
from align.reports.plots import best_of_figure, category_figure, image_uri, roc_figure, scatter_figure
from reward_models.backbones import ClipBackbone
from reward_models.embedding_cache import EmbeddingCache
from reward_models.labels import ATTRIBUTES, read_labels
from reward_models.metrics import platt_probabilities, roc_auc, score_metrics
from reward_models.model_dir import SPLITS, TRAINING_CONFIG, WITHOUT_AUX
from reward_models.reward_model import RewardModel, probabilities

DISAGREEMENTS = 12


def heldout_ratings(model_dir: Path, labels_path: Path) -> tuple[pd.DataFrame, dict]:
    """The label file's ratings of prompts the reward model never trained on, with every score."""
    training_config = yaml.safe_load((model_dir / TRAINING_CONFIG).read_text())
    splits = json.loads((model_dir / SPLITS).read_text())
    labels = read_labels(labels_path)
    trained_on = set(splits["train"]) | set(splits["val"])
    if "split" in labels:
        leaked = sorted(set(labels.loc[labels["split"] == "heldout", "prompt"]) & trained_on)
        if leaked:
            raise BadInput(f"label file {labels_path} comes from another prompt set: its held-out prompt {leaked[0]!r}"
                           f" was a training prompt of the reward model in {model_dir}")
    heldout = labels[labels["prompt"].isin(set(splits["test"]))].copy()
    if heldout.empty:
        raise BadInput(f"label file {labels_path} has no ratings of the {len(splits['test'])} held-out prompts of the"
                       f" reward model in {model_dir}; it comes from another prompt set")
    if training_config["world"] == "shapes":
        from align.shapes.oracle_labels import check_shapes_prompts, with_oracle_labels

        check_shapes_prompts(heldout, f"label file {labels_path}")
        heldout = with_oracle_labels(heldout)
    model = RewardModel.from_pretrained(model_dir)
    scorers = {"reward": model}
    if (model_dir / WITHOUT_AUX).is_dir():
        scorers["reward without aux"] = RewardModel.from_pretrained(model_dir / WITHOUT_AUX)
    cache = embedding_cache(model)
    parts = []
    for run_dir, part in heldout.groupby("run_dir", sort=False):
        images = cache.image_embeddings(run_dir, list(part["image_path"]))
        texts = cache.text_embeddings(run_dir, list(part["prompt"]))
        pooled = images[:, 0] if images.ndim == 3 else images
        part = part.assign(clip_score=(100 * (pooled * texts).sum(-1).clamp(min=0)).numpy())
        for name, scorer in scorers.items():
            part[name] = _rewards(scorer, part, images, texts)
        for name, probability in _attribute_probabilities(model, part, images, texts).items():
            part[f"p_{name}"] = probability
        parts.append(part)
    context = {"training_config": training_config, "splits": splits, "metrics": model.metrics, "model": model, "cache": cache}
    return pd.concat(parts), context


def embedding_cache(model: RewardModel) -> EmbeddingCache:
    """The frozen backbone's cache, with patch tokens if the head reads them."""
    base = model.backbone if not model.backbone.trainable else ClipBackbone(
        type(model.backbone.config)(**{**model.backbone.config.__dict__, "unfreeze_last_blocks": 0}))
    return EmbeddingCache(base, patches=model.uses_patches)


def _pictures(part: pd.DataFrame) -> list:
    from PIL import Image

    return [Image.open(p).convert("RGB") for p in part["image_path"]]


def _rewards(model: RewardModel, part: pd.DataFrame, images, texts) -> np.ndarray:
    import torch

    with torch.no_grad():
        if not model.backbone.trainable:
            return model.rewards_from_embeddings(images, texts).cpu().numpy()
        return model(_pictures(part), list(part["prompt"])).cpu().numpy()


def _attribute_probabilities(model: RewardModel, part: pd.DataFrame, images, texts) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        if model.backbone.trainable:
            found = model.attribute_probabilities(_pictures(part), list(part["prompt"]))
        else:
            found = probabilities(model.head(images.to(model.device), texts.to(model.device)))
    return {name: p.cpu().numpy() for name, p in found.items()}


def write_report(model_dir: str | Path, labels_path: str | Path, out: str | Path, overwrite: bool = False,
                 pools: list[str | Path] = ()) -> Path:
    """With pools (run directories of several images per prompt), best-of-n curves on their prompts too."""
    model_dir, labels_path, out, pools = Path(model_dir), Path(labels_path), Path(out), [Path(p) for p in pools]
    if out.exists() and not overwrite:
        raise BadInput(f"{out} already exists; pass --overwrite to replace it")
    if not (model_dir / SPLITS).is_file() or not (model_dir / TRAINING_CONFIG).is_file():
        raise BadInput(f"{model_dir} is not a reward model directory written by `t2i-align train-reward`")
    ratings, context = heldout_ratings(model_dir, labels_path)
    if pools:
        add_best_of_curves(context, pools)
    body = "\n".join(sections(ratings, context, model_dir, labels_path))
    return write_page(out, PAGE.format(title="Learned reward vs CLIP score", body=body))


def add_best_of_curves(context: dict, pools: list[Path]) -> None:
    if context["training_config"]["world"] != "shapes":
        raise BadInput("best-of-n pools are judged by the shapes world's oracle; this reward model's world is not shapes")
    context["best_of"] = curves(scored_pools(pools, context["model"], context["cache"]))


def write_page(out: Path, page: str) -> Path:
    """Through a hidden partial file, so a crash never leaves half a report under the final name."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    partial.write_text(page)
    partial.replace(out)
    return out


def _scorer_metrics(frame: pd.DataFrame, truth: str, scorers: list[str], context: dict) -> dict[str, dict]:
    metrics = context["metrics"]
    platt, threshold = metrics["clip_score_platt"], metrics["clip_score_threshold"]
    result = {}
    for name in scorers:
        scores = frame[name].to_numpy()
        if name == "CLIP score":
            probabilities, cut = platt_probabilities(scores, platt), threshold
        else:
            probabilities, cut = 1 / (1 + np.exp(-scores)), 0.0
        result[name] = score_metrics(scores, probabilities, frame[truth].to_numpy(), cut, frame["category"].to_numpy(),
                                     frame["prompt"].to_numpy())
    return result


def sections(ratings: pd.DataFrame, context: dict, model_dir: Path, labels_path: Path) -> list[str]:
    """The report's body, one HTML string per section, the <h1> summary first."""
    ratings = ratings.rename(columns={"clip_score": "CLIP score"})
    scorers = [s for s in ("reward", "reward without aux", "CLIP score") if s in ratings]
    samples = ratings.groupby("image_path", sort=False).agg(
        prompt=("prompt", "first"), category=("category", "first"), ups=("label", "sum"), n=("label", "size"),
        **{s: (s, "first") for s in scorers},
        **{c: (c, "first") for c in ratings.columns if c.startswith(("oracle_", "p_"))},
    ).reset_index()
    samples["thumbs_up_share"] = samples["ups"] / samples["n"]
    truths = {"raters' labels (one point per rating)": (ratings, "label")}
    if "oracle_label" in ratings:
        truths["oracle's clean verdict (one point per image)"] = (samples, "oracle_label")
    measured = {title: _scorer_metrics(frame, truth, scorers, context) for title, (frame, truth) in truths.items()}

    return [
        _summary(measured, ratings, samples, context),
        _how_to_read(context),
        "<h2>ROC curves on held-out prompts</h2>"
        f"<img alt='ROC curves' src='{roc_figure({t: (f[c].to_numpy(), {s: f[s].to_numpy() for s in scorers}) for t, (f, c) in truths.items()})}'>"
        + _metrics_table(measured),
        "<h2>Learned reward against CLIP score</h2><p>Each point is a held-out image; its colour is the share of"
        " raters who liked it. A good reward separates green from red vertically; CLIP score can only separate"
        " them horizontally.</p>"
        f"<img alt='reward against CLIP score' src='{scatter_figure(samples['CLIP score'].to_numpy(), samples['reward'].to_numpy(), samples['thumbs_up_share'].to_numpy())}'>",
        "<h2>Accuracy per prompt category</h2><p>Accuracy at the reward's own threshold (probability 0.5) and at"
        " the CLIP-score threshold fitted on the training prompts.</p>"
        + "".join(f"<img alt='accuracy per category against the {html.escape(title)}' src='"
                  f"{category_figure({s: m['accuracy_by_category'] for s, m in by_scorer.items()}, 'against the ' + title.split(' (')[0])}'>"
                  for title, by_scorer in measured.items()),
        _attribute_section(samples),
        _best_of_section(context),
        _disagreements(samples),
        _aux_section(measured, context),
        _data_section(ratings, samples, context),
        _provenance(model_dir, labels_path, context),
    ]


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.{digits}f}"


def _summary(measured: dict, ratings: pd.DataFrame, samples: pd.DataFrame, context: dict) -> str:
    lines = []
    for title, by_scorer in measured.items():
        reward, clip = by_scorer["reward"]["roc_auc"], by_scorer["CLIP score"]["roc_auc"]
        better = "better than" if reward > clip else "no better than"
        lines.append(f"<li>Against the {html.escape(title.split(' (')[0])}: learned reward ROC-AUC <b>{_fmt(reward)}</b>,"
                     f" CLIP score <b>{_fmt(clip)}</b> — the reward ranks images {better} CLIP score"
                     f" (difference {reward - clip:+.3f}).</li>")
    return (f"<h1>Learned reward vs CLIP score</h1><p class='lead'>Can a reward model trained on thumbs-up / thumbs-down"
            f" ratings judge whether an image matches its prompt better than CLIP score, on prompts it never saw?"
            f" This report scores <b>{len(ratings)}</b> ratings of <b>{len(samples)}</b> images for"
            f" <b>{ratings['prompt'].nunique()}</b> held-out prompts.</p><ul>{''.join(lines)}</ul>")


def _how_to_read(context: dict) -> str:
    backbone = context["training_config"]["backbone"]
    oracle = ("<dt>oracle</dt><dd>a program that parses the shapes-world image (background, objects, colours,"
              " shapes) and checks every attribute the prompt states: the noise-free truth the simulated raters"
              " flipped at their noise rate.</dd>") if context["training_config"]["world"] == "shapes" else ""
    return (
        "<h2>How to read this</h2><dl>"
        f"<dt>learned reward</dt><dd>a small neural network on CLIP ({html.escape(backbone['name'])}) image and text"
        " embeddings, trained to predict the raters' thumbs up; its output is a logit (sigmoid gives the"
        " probability of a thumbs up).</dd>"
        "<dt>reward without aux</dt><dd>the same model trained without the auxiliary task (see below).</dd>"
        "<dt>CLIP score</dt><dd>100 × cosine similarity of the same CLIP's image and text embeddings, the usual"
        " training-free alignment score.</dd>"
        "<dt>held-out prompts</dt><dd>prompts none of whose ratings were used for training or early stopping;"
        " in the shapes world they contain attribute pairs (e.g. a colour with a shape) never seen in training.</dd>"
        f"{oracle}"
        "<dt>ROC-AUC</dt><dd>the probability that a random liked image scores above a random disliked one (0.5 is"
        " chance); it needs no threshold.</dd>"
        "<dt>calibration error</dt><dd>expected calibration error over 10 bins: how far predicted probabilities are"
        " from observed rates. CLIP score gets probabilities from a logistic fit on the training prompts.</dd></dl>"
    )


def _metrics_table(measured: dict) -> str:
    rows = []
    for title, by_scorer in measured.items():
        for scorer, m in by_scorer.items():
            rows.append(f"<tr><td>{html.escape(title.split(' (')[0])}</td><td>{scorer}</td><td>{m['n']}</td>"
                        f"<td>{_fmt(m['roc_auc'])}</td><td>{_fmt(m['within_prompt_roc_auc'])}</td><td>{_fmt(m['accuracy'])}</td>"
                        f"<td>{_fmt(m['calibration_error'])}</td></tr>")
    return ("<table><tr><th>truth</th><th>scorer</th><th>n</th><th>ROC-AUC</th><th>within-prompt ROC-AUC</th>"
            "<th>accuracy</th><th>calibration error</th></tr>" + "".join(rows) + "</table>")


def _attribute_section(samples: pd.DataFrame) -> str:
    """The attribute heads' verdicts (probability > 0.5 that it is right) against the oracle's, per attribute."""
    if "p_count" not in samples or "oracle_count" not in samples:
        return ""
    rows = []
    for attribute in ATTRIBUTES:
        known = samples[f"oracle_{attribute}"].notna()
        truth = samples.loc[known, f"oracle_{attribute}"].to_numpy().astype(int)
        probability = samples.loc[known, f"p_{attribute}"].to_numpy()
        accuracy = float(((probability > 0.5) == truth).mean()) if known.any() else None
        rows.append(f"<tr><td>{attribute}</td><td>{int(known.sum())}</td><td>{_fmt(1 - truth.mean() if known.any() else None)}</td>"
                    f"<td>{_fmt(accuracy)}</td><td>{_fmt(roc_auc(probability, truth))}</td></tr>")
    return ("<h2>Per attribute, against the oracle</h2><p>The head's attribute outputs, learned from the raters'"
            " reason tags, against the oracle's verdict on each attribute a held-out prompt states (malformed: the"
            " image parses).</p><table><tr><th>attribute</th><th>images</th><th>oracle: wrong</th><th>accuracy</th>"
            "<th>ROC-AUC</th></tr>" + "".join(rows) + "</table>")


def _best_of_section(context: dict) -> str:
    if "best_of" not in context:
        return ("<h2>Best-of-n</h2><p>No pools given: pass <code>--pool RUN</code> (a run with several images per"
                " prompt, such as a best-of-n run's <code>candidates/</code>) for best-of-n curves.</p>")
    return ("<h2>Best-of-n: picking the best of n images</h2><p>Share of aligned images (oracle) when the learned"
            " reward or CLIP score keeps the best of n images of a prompt, every n-subset of each prompt's pool counted"
            " once; the oracle's ceiling is the share of subsets holding any aligned image. n = 1 is a random image.</p>"
            f"<img alt='best-of-n curves' src='{best_of_figure(context['best_of'])}'>" + pools_table(context["best_of"]))


def _disagreements(samples: pd.DataFrame) -> str:
    """Images whose percentile rank under the reward and under CLIP score differ most."""
    gap = samples["reward"].rank(pct=True) - samples["CLIP score"].rank(pct=True)
    top = samples.assign(gap=gap).reindex(gap.abs().sort_values(ascending=False).index).head(DISAGREEMENTS)
    cards = []
    for _, s in top.iterrows():
        verdict = ""
        if "oracle_label" in s:
            verdict = f"<br>oracle: {'matches' if s['oracle_label'] else 'does not match'}"
        leaning = "reward high, CLIP low" if s["gap"] > 0 else "CLIP high, reward low"
        cards.append(
            f"<figure><img alt='{html.escape(s['prompt'])}' src='{image_uri(s['image_path'])}'><figcaption>"
            f"<b>{html.escape(s['prompt'])}</b><br>raters: {int(s['ups'])} thumbs up / {int(s['n'] - s['ups'])} down{verdict}"
            f"<br>reward {s['reward']:.2f} · CLIP {s['CLIP score']:.1f}<br><i>{leaning}</i></figcaption></figure>")
    return ("<h2>Where reward and CLIP score disagree most</h2><p>Held-out images ranked by the gap between their"
            " percentile under the learned reward and under CLIP score. The raters' votes show which one was"
            " right.</p><div class='grid'>" + "".join(cards) + "</div>")


def _aux_section(measured: dict, context: dict) -> str:
    metrics = context["metrics"]
    weight = context["training_config"]["train"]["aux_weight"]
    if "without_aux" not in metrics:
        return (f"<h2>Auxiliary task</h2><p>The model was trained with auxiliary weight {weight:g} and no comparison"
                " run (set <code>train.compare_without_aux</code> and a positive <code>train.aux_weight</code>).</p>")
    rows = []
    for title, by_scorer in measured.items():
        with_aux, without = by_scorer["reward"], by_scorer["reward without aux"]
        rows.append(f"<tr><td>{html.escape(title.split(' (')[0])}</td><td>{_fmt(with_aux['roc_auc'])}</td>"
                    f"<td>{_fmt(without['roc_auc'])}</td><td>{_fmt(with_aux['accuracy'])}</td><td>{_fmt(without['accuracy'])}</td></tr>")
    rows.append(f"<tr><td>true prompt beats all its perturbations</td><td>{_fmt(metrics['aux_accuracy'])}</td>"
                f"<td>{_fmt(metrics['without_aux']['aux_accuracy'])}</td><td></td><td></td></tr>")
    return (
        "<h2>Effect of the auxiliary task</h2><p>Lee et al. (2023) add a prompt-classification task: for an image"
        " raters liked, the reward of its true prompt must beat the rewards of perturbed prompts (another count,"
        f" colour or background). This model used weight {weight:g}; the comparison model is identical but"
        " trained with weight 0, same data, same seed.</p><table><tr><th>held-out, against</th><th>AUC with aux</th>"
        "<th>AUC without</th><th>accuracy with</th><th>accuracy without</th></tr>" + "".join(rows) + "</table>"
    )


def _data_section(ratings: pd.DataFrame, samples: pd.DataFrame, context: dict) -> str:
    data = context["metrics"]["data"]
    rows = "".join(
        f"<tr><td>{part}</td><td>{data[part]['prompts']}</td><td>{data[part]['samples']}</td><td>{data[part]['ratings']}</td>"
        f"<td>{', '.join(f'{c} {n}' for c, n in sorted(data[part]['by_category'].items()))}</td></tr>"
        for part in ("train", "val", "test")
    )
    extra = ""
    if "rater_agreement_with_oracle" in data:
        extra = (f"<p>Raters agree with the oracle on {100 * data['rater_agreement_with_oracle']:.1f}% of ratings;"
                 f" the oracle calls {100 * data['oracle_positive_rate']:.1f}% of images aligned.</p>")
    return (
        f"<h2>Data</h2><p>{data['ratings']} ratings of {data['samples']} images by {data['raters']} raters;"
        f" {100 * data['positive_rate']:.1f}% thumbs up. Prompts are split, never individual ratings: val prompts"
        " only decide when training stops, test prompts are the held-out set of this report.</p>" + extra +
        "<table><tr><th>part</th><th>prompts</th><th>images</th><th>ratings</th><th>ratings by category</th></tr>"
        f"{rows}</table><p>This report's label file: {len(ratings)} held-out ratings of {len(samples)} images.</p>"
    )


def _provenance(model_dir: Path, labels_path: Path, context: dict) -> str:
    training = context["metrics"]["training"]
    return (
        "<h2>Provenance</h2><p>Reward model: <code>" + html.escape(str(model_dir.resolve())) + "</code><br>Labels: <code>"
        + html.escape(str(labels_path.resolve())) + f"</code><br>Head training: {training['epochs']} epochs (best"
        f" {training['best_epoch']}), {context['metrics']['head_training_seconds']:.2f} s on cached embeddings.<br>"
        f"Written {datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}.</p><details><summary>training config</summary><pre>"
        + html.escape(yaml.safe_dump(context["training_config"], sort_keys=False)) + "</pre></details>"
    )


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ margin-bottom: .2em; }} h2 {{ margin-top: 1.8em; border-bottom: 1px solid #ddd; }}
.lead {{ font-size: 1.1em; }} img {{ max-width: 100%; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ddd; padding: 4px 10px; text-align: left; }}
th {{ background: #f4f4f4; }} dt {{ font-weight: bold; margin-top: .5em; }} dd {{ margin-left: 1.5em; }}
.grid {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(180px, 1fr)); gap: 12px; }}
figure {{ margin: 0; padding: 8px; border: 1px solid #ddd; border-radius: 6px; font-size: 13px; }}
figure img {{ width: 128px; height: 128px; image-rendering: pixelated; display: block; margin: 0 auto 6px; }}
pre {{ background: #f7f7f7; padding: 1em; overflow-x: auto; }}
.source {{ color: #666; font-size: 13px; }} .ok {{ color: #1a7f37; }} .bad {{ color: #c62828; }}
</style></head><body>
{body}
</body></html>
"""

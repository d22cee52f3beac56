"""report.html of `t2i-align demo`: did the human-feedback loop make the model follow its prompts?

One offline file. Headline numbers come from summary.json; pictures and tables are read from
the stage folders of the demo directory, and every section names the files it read. Text from
the demo directory is escaped with html.escape, as in align/reports/reward_report.py.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

import pandas as pd
import yaml

from align.demo.config import ORACLE_METHODS, DemoConfig, heldout_run
from align.demo.summary import BEST_OF_RUNS
from align.reports.plots import hacking_figure, image_uri, png_uri, sample_efficiency_figure
from align.reports.reward_report import PAGE, add_best_of_curves, heldout_ratings, sections, write_page
from align.rundir import read_samples

CATEGORIES = ("count", "color", "background", "combination", "overall")
SPLITS = {"unseen": "unseen (held-out) prompts", "seen": "seen (training) prompts, fresh seeds"}
SHOWN_PROMPTS = 8


def write_demo_report(demo_dir: Path, out: Path) -> Path:
    demo_dir, out = Path(demo_dir), Path(out)
    summary = json.loads((demo_dir / "summary.json").read_text())
    methods = _methods(summary)
    histories = {label: json.loads((demo_dir / method / "metrics.json").read_text())["history"]
                 for method, label in methods.items()}
    body = [
        _headline(summary),
        _summary_table(summary),
        _reward_model(demo_dir),
        _before_after(demo_dir, summary),
        _training_curves(demo_dir, methods, histories),
        _reward_hacking(demo_dir, {m: label for m, label in methods.items() if m not in ORACLE_METHODS}, histories),
        _round2(summary),
        _agreement(demo_dir, summary),
        _provenance(demo_dir, summary),
    ]
    return write_page(out, PAGE.format(title="t2i-align demo: human feedback on the shapes world", body="\n".join(body)))


def _methods(summary: dict) -> dict[str, str]:
    """The demo's fine-tuned models, run name -> label."""
    return {name: label for name, (label, _) in DemoConfig(**summary["config"]).methods().items()}


def _models(summary: dict) -> dict[str, str]:
    """Every model the demo compared, name -> label, in the tables' order."""
    return DemoConfig(**summary["config"]).models()


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pct(value) -> str:
    return "–" if _missing(value) else f"{100 * value:.1f}%"


def _num(value, digits: int = 3) -> str:
    return "–" if _missing(value) else f"{value:.{digits}f}"


def _source(*files: str) -> str:
    return "<p class='source'>Source: " + ", ".join(f"<code>{html.escape(f)}</code>" for f in files) + ".</p>"


def _headline(summary: dict) -> str:
    models, target = summary["models"], summary["targets"]["ddpo_gap_closed"]
    sentences = []
    for split, what in SPLITS.items():
        base = models["baseline"]["splits"][split]["alignment"]["overall"]
        sentences.append(f"On {what}, the baseline's images match their prompt {_interval(base)} of the time.")
    for method, label in _methods(summary).items():
        closed = summary["gap_closed"][method]
        sentences.append(f"{label} reaches {_interval(models[method]['splits']['unseen']['alignment']['overall'])} on unseen"
                         f" prompts, {_change(closed['unseen'])}, and {_interval(models[method]['splits']['seen']['alignment']['overall'])}"
                         f" on seen prompts, {_change(closed['seen'])}.")
    verdict = ("<b class='ok'>met</b>" if target["met"] else
               f"<b class='bad'>missed</b>: the interval's lower end, {_pct(target['low'])}, does not clear it")
    n, best = summary["config"]["best_of"], models["best_of"]["splits"]
    sentences.append(f"Best-of-{n} sampling from the baseline, picked by the round-1 reward with no fine-tuning, reaches"
                     f" {_interval(best['unseen']['alignment']['overall'])} on unseen prompts,"
                     f" {_change(summary['gap_closed']['best_of']['unseen'])}, and {_interval(best['seen']['alignment']['overall'])}"
                     f" on seen prompts, {_change(summary['gap_closed']['best_of']['seen'])}: the cheap baseline fine-tuning must beat.")
    sentences.append(f"The target, DDPO closing {_pct(target['target'])} of the unseen gap, is {verdict}.")
    sentences.append(_tracking_sentence(summary["targets"]["round2_tracking"]))
    return ("<h1>Human feedback on the shapes world</h1><p class='lead'>The demo rates a tiny text-to-image"
            " model's images with simulated raters, trains a reward model on the ratings, fine-tunes the model"
            " against that reward with DDPO and with reward-weighted regression (RWR), and rates once more.</p>"
            f"<h2>Headline</h2><p>{' '.join(sentences)}</p><p>Gap closed = (fine-tuned − baseline) / (1 − baseline)"
            " of oracle alignment: the share of the way to perfect alignment. Brackets hold 95% intervals of a"
            " bootstrap over prompts; a fine-tuned model is compared with the baseline image for image (same"
            " prompt, same seed), so a difference's interval is narrower than either model's own. A target counts"
            " as met only when its interval's lower end clears it.</p>"
            + _source("summary.json (models, gap_closed, targets)", "compare.json"))


def _interval(estimate: dict, signed: bool = False) -> str:
    value = f"{100 * estimate['value']:+.1f}%" if signed else _pct(estimate["value"])
    if _missing(estimate.get("low")):
        return value
    low, high = (f"{100 * estimate[k]:+.1f}%" if signed else _pct(estimate[k]) for k in ("low", "high"))
    return f"{value} [{low}, {high}]"


def _change(closed: dict) -> str:
    if _missing(closed["value"]):
        return "the gap undefined (the baseline is perfect)"
    if closed["value"] >= 0:
        return f"closing {_interval(closed)} of the gap to perfect alignment"
    return f"widening the gap by {_pct(-closed['value'])} (gap closed {_interval(closed, signed=True)})"


def _tracking_sentence(tracking: dict) -> str:
    if _missing(tracking["value"]) or _missing(tracking["target"]):
        return ("Whether the round-2 reward tracks the oracle could not be measured: the oracle judged all images"
                " of one model the same way, so ROC-AUC is undefined.")
    verdict = ("<b class='ok'>at least as well as</b>" if tracking["met"] else "<b class='bad'>less well than</b>")
    return (f"The round-2 reward, retrained with ratings of DDPO's images, ranks DDPO's held-out images with ROC-AUC"
            f" {_num(tracking['value'])} against the oracle: {verdict} the round-1 reward ranked the baseline's"
            f" ({_num(tracking['target'])}).")


def _summary_table(summary: dict) -> str:
    tables = []
    for split, what in SPLITS.items():
        rows = []
        for name, label in _models(summary).items():
            m = summary["models"][name]["splits"][split]
            oracle = "".join(f"<td>{_interval(m['alignment'][c]) if c in m['alignment'] else '–'}</td>" for c in CATEGORIES)
            rows.append(f"<tr><td><b>{label}</b></td><td>{m['images']}</td>{oracle}<td>{_pct(m['parseable']['value'])}</td>"
                        f"<td>{_num(m['reward_mean']['value'], 2)}</td><td>{_num(m['clip_score']['value'], 1)}</td>"
                        f"<td>{_num(m['fidelity_frechet'], 2)}</td></tr>")
            versus = summary["models"][name].get("versus_baseline", {}).get(split)
            if versus:
                cells = "".join(f"<td>{_interval(versus['by_category'][c]['difference'], signed=True)}</td>"
                                if c in versus["by_category"] else "<td>–</td>" for c in CATEGORIES)
                rows.append(f"<tr class='difference'><td>{label} − baseline</td><td>{versus['images']}</td>{cells}"
                            f"<td colspan='4'>{versus['changed_verdicts']} verdicts changed</td></tr>")
        header = "".join(f"<th>{c}</th>" for c in CATEGORIES)
        tables.append(f"<h3>{what.capitalize()}</h3><table><tr><th>model</th><th>images</th>{header}<th>parseable</th>"
                      f"<th>mean reward</th><th>CLIP score</th><th>fidelity (Fréchet)</th></tr>{''.join(rows)}</table>")
    return (
        "<h2>Baseline, RWR, DDPO, reward backpropagation and best-of-n on seen and unseen prompts</h2><p>The models drew images for the same"
        " prompts with the same seeds: <i>seen</i> are the training prompts with fresh seeds, never used in"
        " fine-tuning or rating; <i>unseen</i> are the held-out prompts, whose attribute pairs no model or reward"
        " saw. <i>Oracle alignment</i> is the share of images a program that parses the scene judges to show"
        " everything the prompt states, per prompt category and overall, with its 95% interval; the row under each"
        " fine-tuned model is its paired difference from the baseline. <i>Parseable</i> is the share of images it"
        " could parse into clean shapes at all. <i>Mean reward</i> is the round-1 learned reward (a logit), the"
        " quantity fine-tuning maximised. <i>CLIP score</i> is 100 × cosine similarity of the tiny CLIP's image"
        " and text embeddings. <i>Fidelity</i> is the Fréchet distance, in CLIP image-embedding space, from the"
        " images to clean renders of the same prompts: lower is closer to clean scenes.</p>" + "".join(tables)
        + _source("summary.json (models)", "compare.json", "<run>/scores.parquet")
    )


def _reward_model(demo_dir: Path) -> str:
    """The reward model report's body, its headings one level down so it nests under this page."""
    model_dir, labels = demo_dir / "reward-r1", demo_dir / "round1/labels.parquet"
    ratings, context = heldout_ratings(model_dir, labels)
    add_best_of_curves(context, [demo_dir / f"{run}/candidates" for run in BEST_OF_RUNS])
    body = "\n".join(sections(ratings, context, model_dir, labels))
    body = body.replace("<h2>", "<h3>").replace("</h2>", "</h3>").replace("<h1>", "<h2>").replace("</h1>", "</h2>")
    intro = ("<p>The reward model every fine-tuning run optimised, trained on the round-1 ratings, scored here on"
             " the held-out ratings of round 1 exactly as <code>t2i-align report</code> does.</p>"
             + _source("reward-r1/", "round1/labels.parquet", "round1/heldout/images",
                       *(f"{run}/candidates (best-of-n pools)" for run in BEST_OF_RUNS)))
    return body.replace("</h2>", "</h2>" + intro, 1)


def _before_after(demo_dir: Path, summary: dict) -> str:
    prompts = _matched_samples(demo_dir, summary).drop_duplicates("prompt")
    turn = prompts.groupby("category", sort=False).cumcount()  # take prompts from each category in turn
    shown = prompts.assign(turn=turn).sort_values("turn", kind="stable").head(SHOWN_PROMPTS).sort_index()
    rows, models = [], _models(summary)
    for _, s in shown.iterrows():
        cells = "".join(_verdict_cell(s[f"{name} image"], s[f"{name} aligned"], label) for name, label in models.items())
        rows.append(f"<tr><td><b>{html.escape(s['prompt'])}</b><br>{s['category']}, seed {s['seed']}</td>{cells}</tr>")
    runs = [heldout_run(name) for name in models]
    return (
        f"<h2>Before and after: the same prompt and seed</h2><p>{len(shown)} held-out prompts, taken from each"
        " category in turn in prompt-set order (not chosen by outcome), each drawn by every model from the"
        " same starting noise (the prompt's first seed). Under each image, the oracle's verdict:"
        " ✓ shows everything the prompt states, ✗ does not.</p><table><tr><th>prompt</th>"
        + "".join(f"<th>{label}</th>" for label in models.values()) + "</tr>" + "".join(rows) + "</table>"
        + _source(*(f"{run}/samples.parquet" for run in runs), *(f"{run}/scores.parquet" for run in runs))
    )


def _matched_samples(demo_dir: Path, summary: dict) -> pd.DataFrame:
    """One row per held-out (prompt, seed) drawn by every model: each model's image and oracle verdict."""
    matched = None
    for name in _models(summary):
        run = demo_dir / heldout_run(name)
        samples = read_samples(run).merge(pd.read_parquet(run / "scores.parquet")[["id", "aligned"]], on="id")
        samples = samples.sort_values("id").rename(columns={"aligned": f"{name} aligned"})
        samples[f"{name} image"] = [str(run / path) for path in samples["image_path"]]
        keep = ["prompt", "seed", f"{name} image", f"{name} aligned"]
        matched = samples[["category", *keep]] if matched is None else matched.merge(samples[keep], on=["prompt", "seed"])
    return matched


def _verdict_cell(image_path: str, aligned: bool, label: str) -> str:
    mark = "<span class='ok'>✓ aligned</span>" if aligned else "<span class='bad'>✗ not aligned</span>"
    return (f"<td><figure><img alt='{label} image' src='{image_uri(image_path)}'>"
            f"<figcaption>{mark}</figcaption></figure></td>")


def _training_curves(demo_dir: Path, methods: dict[str, str], histories: dict[str, list[dict]]) -> str:
    grids = []
    for method, label in methods.items():
        files = sorted((demo_dir / method / "grids").glob("epoch_*.png"))
        if files:
            first, last = files[0], files[-1]
            grids.append(f"<tr><td><b>{label}</b></td>" + "".join(
                f"<td><img alt='{label} samples, {f.stem}' src='{png_uri(f)}'><br><code>{method}/grids/{f.name}</code></td>"
                for f in (first, last)) + "</tr>")
    grid_table = ("<p>The fine-tuning runs' own evaluation grids (held-out prompts, fixed seeds) at their first"
                  " evaluation, before training, and at their last:</p>"
                  "<table><tr><th>method</th><th>first evaluation</th><th>last evaluation</th></tr>"
                  + "".join(grids) + "</table>") if grids else "<p>The fine-tuning runs wrote no image grids.</p>"
    oracle_rewarded = {label for method, label in methods.items() if method in ORACLE_METHODS}
    oracle = ("<p>The runs marked <i>oracle reward</i> optimised the oracle's own verdict (1 aligned, 0 not) with the"
              " same settings and budget: the upper bound of what a perfect reward buys each method. Their rewards are"
              " not logits and are left out of the right panel. Reward backpropagation has no such run: the oracle"
              " parses pixels and has no gradient.</p>") if oracle_rewarded else ""
    return (
        "<h2>Training curves</h2><p>Against the reward queries spent, the images the reward scored for training"
        " (the budget that matters when the reward is people): left, oracle alignment on the seen and unseen"
        " prompts at the runs' own evaluations (fixed prompts and seeds, the deployment sampler; shaded: 95%"
        " intervals over prompts); right, the mean learned reward, of each epoch's training samples (DDPO and"
        " reward backpropagation; RWR scores one fixed set of images before training and draws none) and on unseen prompts. Epoch 0 is"
        " before any training. A reward that climbs while alignment stays flat or falls is a reward the model"
        " learned to please without following prompts better. These evaluations draw one image per prompt, so"
        " their intervals are wider than the table's.</p>"
        + oracle + f"<img alt='sample efficiency' src='{sample_efficiency_figure(histories, oracle_rewarded)}'>" + grid_table
        + _source(*(f"{m}/metrics.json (history)" for m in methods), *(f"{m}/grids/" for m in methods))
    )


def _reward_hacking(demo_dir: Path, methods: dict[str, str], histories: dict[str, list[dict]]) -> str:
    """The runs against the learned reward only: one against the oracle cannot hack it."""
    histories = {label: histories[label] for label in methods.values()}
    warnings = []
    for method, label in methods.items():
        log = demo_dir / method / "train.log"
        lines = log.read_text().splitlines() if log.is_file() else []
        warnings += [f"<li><b>{label}</b>: {html.escape(line[line.index('reward hacking:'):])}</li>"
                     for line in lines if "reward hacking:" in line]
    logged = (f"<p>Warnings the runs logged:</p><ul>{''.join(warnings)}</ul>" if warnings else
              "<p>No run logged a reward-hacking warning: at no evaluation did the reward rise above its value"
              " at the best alignment so far while alignment fell more than the tolerance below that best.</p>")
    return (
        "<h2>Reward hacking</h2><p>Fine-tuning maximises a learned reward, which can be fooled. Each point is one"
        " evaluated epoch: its mean reward and its oracle alignment on unseen prompts, labelled with the epoch."
        " Real progress moves up (alignment rises); reward hacking moves right (reward up) and down (alignment"
        " down). The runs check this at every evaluation and log a warning when it happens.</p>"
        f"<img alt='reward against oracle alignment' src='{hacking_figure(histories)}'>" + logged
        + _source(*(f"{m}/metrics.json (history)" for m in methods), *(f"{m}/train.log" for m in methods))
    )


def _round2(summary: dict) -> str:
    tracking, target = summary["reward_tracking"], summary["targets"]["round2_tracking"]
    rows = [("round-1 reward", "baseline", tracking["round1_on_baseline"], "the baseline model's images, as in its training data, but of held-out prompts"),
            ("round-1 reward", "DDPO", tracking["round1_on_ddpo"], "after DDPO optimised against it: a drop means DDPO"
             " found images this reward misjudges"),
            ("round-2 reward", "DDPO", tracking["round2_on_ddpo"], "retrained with ratings of DDPO's images as well")]
    table = "".join(f"<tr><td>{r}</td><td>{m}</td><td>{_num(auc)}</td><td>{why}</td></tr>" for r, m, auc, why in rows)
    return (
        "<h2>Round 2: rating the fine-tuned model's images</h2><p>As in iterative RLHF, DDPO's images of the"
        f" training prompts were rated ({summary['ratings']['round2_train']} ratings) and the reward retrained on"
        " both rounds. Does a reward still rank a model's held-out images the way the oracle does? ROC-AUC is the"
        " probability that a random image the oracle calls aligned gets a higher reward than a random one it does"
        " not (0.5 is chance).</p><table><tr><th>reward</th><th>held-out images of</th><th>ROC-AUC vs oracle</th>"
        f"<th>what it measures</th></tr>{table}</table><p>{_tracking_sentence(target)}</p>"
        + _source("summary.json (reward_tracking, targets)", "reward-r1/", "reward-r2/",
                  "round1/heldout/scores.parquet", "eval/ddpo-heldout/scores.parquet")
    )


def _agreement(demo_dir: Path, summary: dict) -> str:
    agreement = summary["agreement"]
    counts = _ratings_per_run_and_rater(demo_dir)
    header = "".join(f"<th>{html.escape(str(r))}</th>" for r in counts.columns)
    rows = "".join(f"<tr><td><code>{html.escape(run)}</code></td>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
                   for run, row in counts.iterrows())
    return (
        "<h2>Rater agreement</h2><p>Held-out images were each rated by more than one rater, so their agreement"
        " bounds how well any reward can match them. Krippendorff's alpha is 1 for perfect agreement and 0 for agreement at"
        " chance; pairwise agreement is the share of pairs of ratings of the same image that agree.</p><p>"
        f"Krippendorff's alpha <b>{_num(agreement['krippendorff_alpha'])}</b>, pairwise agreement"
        f" <b>{_pct(agreement['pairwise'])}</b>, over {agreement['samples']} images rated more than once.</p>"
        f"<table><tr><th>run</th>{header}</tr>{rows}</table>"
        + _source("summary.json (agreement)", "round1/labels.parquet", "round2/labels.parquet (its round2/train rows)")
    )


def _ratings_per_run_and_rater(demo_dir: Path) -> pd.DataFrame:
    """Round 1 from its own export; round 2 from the round2/train rows of the export of both rounds."""
    round1 = pd.read_parquet(demo_dir / "round1/labels.parquet", columns=["run_dir", "rater"])
    both = pd.read_parquet(demo_dir / "round2/labels.parquet", columns=["run_dir", "rater"])
    ratings = pd.concat([round1, both[both["run_dir"].map(_run_name) == "round2/train"]])
    counts = pd.crosstab(ratings["run_dir"].map(_run_name), ratings["rater"])
    counts["total"] = counts.sum(axis=1)
    return counts


def _run_name(run_dir: str) -> str:
    """The demo-relative name (round1/train) of an exported absolute run path, wherever the demo now lies."""
    return "/".join(Path(run_dir).parts[-2:])


def _provenance(demo_dir: Path, summary: dict) -> str:
    timings = summary["stage_seconds"]
    stages = "".join(f"<tr><td>{html.escape(s)}</td><td>{seconds:.0f}</td></tr>" for s, seconds in timings.items())
    sources = "".join(f"<tr><td>{html.escape(k)}</td><td><code>{html.escape(v)}</code></td></tr>"
                      for k, v in summary["sources"].items())
    config = ("<details><summary>demo config</summary><pre>" + html.escape(yaml.safe_dump(summary["config"], sort_keys=False))
              + "</pre></details>") if "config" in summary else ""
    return (
        f"<h2>Provenance</h2><p>Demo directory <code>{html.escape(str(demo_dir.resolve()))}</code>; summary written"
        f" {html.escape(summary['created_at'])} on {html.escape(summary['machine'])}"
        ". Stages reused from an earlier run keep their first"
        f" timing.</p><table><tr><th>stage</th><th>seconds</th></tr>{stages}<tr><td><b>total</b></td>"
        f"<td><b>{sum(timings.values()):.0f}</b></td></tr></table><p>Where each number comes from (paths relative to"
        f" the demo directory):</p><table><tr><th>numbers</th><th>file</th></tr>{sources}</table>{config}"
        + _source("summary.json")
    )

"""`t2i-align demo`: the whole human-feedback loop on the shapes world, one stage at a time.

Each stage is one of the project's own commands, run exactly as a user would run it (the
command is printed), writing into its own folder of OUT. A stage whose output is complete is
reused on a rerun; an interrupted one is completed (`--resume`), never silently redone or
overwritten. Fine-tuning runs in a child process so that accelerate owns that process.

    OUT/round1/{train,heldout}   baseline images, their ratings (labels.db), held-out evaluation
    OUT/round1/labels.parquet    exported round-1 ratings
    OUT/reward-r1, OUT/reward-r2 reward models of round 1 and of rounds 1 + 2
    OUT/ddpo, OUT/rwr, OUT/reward_backprop   fine-tuning runs (LoRA in final/)
    OUT/ddpo_oracle, OUT/rwr_oracle          with oracle_arms: the same runs with the oracle as reward
    OUT/eval/<method>-heldout    the fine-tuned models on the held-out prompts, same seeds as the baseline
    OUT/eval/best_of-*           best-of-n sampling from the baseline with the round-1 reward (candidates/ kept)
    OUT/eval/*-seen              every model on the training prompts with fresh seeds (the seen split)
    OUT/compare.json             `t2i-align compare` of every model on both splits, with intervals
    OUT/round2/train             the DDPO model's images of the training prompts, rated
    OUT/summary.json, OUT/report.html
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from align.cli import default_config
from align.cli import main as cli
from align.demo.config import ORACLE_METHODS, DemoConfig, heldout_run
from align.errors import BadInput


def compared_runs(config: DemoConfig) -> list[tuple[str, str]]:
    """Each model's evaluated runs, seen split first; the baseline's unseen run is round 1's held-out run."""
    return [(m, run) for m in config.models() for run in (f"eval/{m}-seen", heldout_run(m))]


class Demo:
    def __init__(self, config: DemoConfig, out: Path):
        self.config, self.out = config, out
        self.timings_file = out / "stage_seconds.json"
        self.timings = json.loads(self.timings_file.read_text()) if self.timings_file.is_file() else {}

    def run(self) -> Path:
        began, stages = time.perf_counter(), self.stages()
        for number, (name, stage) in enumerate(stages.items(), start=1):
            print(f"\n== stage {number}/{len(stages)}: {name}", flush=True)
            start = time.perf_counter()
            worked = stage()
            if worked:
                self.timings[name] = round(time.perf_counter() - start, 1)
                self.timings_file.write_text(json.dumps(self.timings, indent=2))
            print(f"   {name}: {'done in %.0f s' % self.timings[name] if worked else 'reused from an earlier run'}", flush=True)
        print(f"\ndemo finished in {time.perf_counter() - began:.0f} s")
        return self.out / "report.html"

    def stages(self) -> dict:
        """Stage name -> the method that runs it, in order."""
        oracle = {"oracle upper bound": self.oracle_upper_bound} if self.config.oracle_arms else {}
        return {"baseline images": self.baseline_images, "round-1 ratings": self.round1_ratings,
                "round-1 reward": self.round1_reward, "baseline evaluation": self.baseline_evaluation, "DDPO": self.ddpo,
                "RWR": self.rwr, "reward backpropagation": self.reward_backprop, **oracle,
                "fine-tuned evaluation": self.finetuned_evaluation, "round 2": self.round2,
                "summary and report": self.summary_and_report}

    # -- the stages: each returns whether it did any work --------------------------------------

    def baseline_images(self) -> bool:
        c = self.config
        a = self._generate(self.out / "round1/train", self._train_prompts(), c.train_images_per_prompt, c.train_seed)
        b = self._generate(self.out / "round1/heldout", self._heldout_prompts(), c.heldout_images_per_prompt, c.heldout_seed)
        return a or b

    def round1_ratings(self) -> bool:
        c = self.config
        a = self._rate(self.out / "round1/train", c.train_overlap, seed=0)
        b = self._rate(self.out / "round1/heldout", c.heldout_overlap, seed=1)
        e = self._export(self.out / "round1/labels.parquet", [self.out / "round1/train", self.out / "round1/heldout"])
        return a or b or e

    def round1_reward(self) -> bool:
        return self._train_reward(self.out / "reward-r1", self.out / "round1/labels.parquet")

    def baseline_evaluation(self) -> bool:
        return self._evaluate(self.out / "round1/heldout")

    def ddpo(self) -> bool:
        return self._finetune("ddpo")

    def rwr(self) -> bool:
        return self._finetune("rwr")

    def reward_backprop(self) -> bool:
        return self._finetune("reward_backprop")

    def oracle_upper_bound(self) -> bool:
        """The upper bound: DDPO and RWR with the oracle's verdict as reward, in the same budget."""
        worked = False
        for method in ORACLE_METHODS:
            worked |= self._finetune(method)
        return worked

    def finetuned_evaluation(self) -> bool:
        """Every model on both splits with the same seeds, then compared image for image."""
        c, worked = self.config, False
        best_of = [f"best_of={c.best_of}", f"reward.path={self.out / 'reward-r1'}"]
        loras = {method: [f"lora={self.out / method / 'final'}"] for method in c.methods()}
        for model, extra in {"baseline": [], **loras, "best_of": best_of}.items():
            run = self.out / f"eval/{model}-seen"
            worked |= self._generate(run, self._seen_prompts(), c.seen_images_per_prompt, c.seen_seed,
                                     [*extra, *self._baseline_images(model, "eval/baseline-seen")])
            worked |= self._evaluate(run)
            if extra:
                run = self.out / f"eval/{model}-heldout"
                worked |= self._generate(run, self._heldout_prompts(), c.heldout_images_per_prompt, c.heldout_seed,
                                         [*extra, *self._baseline_images(model, "round1/heldout")])
                worked |= self._evaluate(run)
        return self._compare() or worked

    def round2(self) -> bool:
        """As in iterative RLHF: rate the DDPO model's images, retrain the reward on both rounds."""
        c = self.config
        run = self.out / "round2/train"
        worked = self._generate(run, self._train_prompts(), c.round2_images_per_prompt, c.round2_seed,
                                [f"lora={self.out / 'ddpo/final'}"])
        worked |= self._rate(run, c.train_overlap, seed=2)
        labels = self.out / "round2/labels.parquet"
        worked |= self._export(labels, [self.out / "round1/train", self.out / "round1/heldout", run])
        worked |= self._train_reward(self.out / "reward-r2", labels)
        return worked

    def summary_and_report(self) -> bool:
        from align.demo.report import write_demo_report
        from align.demo.summary import write_summary

        report = self.out / "report.html"
        if report.is_file():
            return False
        write_summary(self.out, self.config, self.timings)
        write_demo_report(self.out, report)
        return True

    # -- the project's commands, as a user would type them -------------------------------------

    def _command(self, *argv: str) -> None:
        print("   $ t2i-align " + " ".join(argv), flush=True)
        code = cli(list(argv))
        if code:
            raise BadInput(f"the demo stopped: `t2i-align {argv[0]}` failed (exit {code}); fix the cause above and rerun the demo to continue")

    def _generate(self, run: Path, prompts: str, per_prompt: int, seed: int, extra: list[str] = ()) -> bool:
        if _generated(run):
            return False
        self._command("generate", "--out", str(run), "--resume", f"model={self.config.model}", f"prompts={prompts}",
                      f"images_per_prompt={per_prompt}", f"seed={seed}", *extra, *self.config.generate)
        return True

    def _rate(self, run: Path, overlap: int, seed: int) -> bool:
        from labeling_app.export import open_existing_store

        if (run / "labels.db").is_file():
            with open_existing_store(run) as store:  # read-only: checking a finished stage writes nothing
                if store.progress("").remaining == 0:
                    return False
        c = self.config
        self._command("simulate-raters", str(run), "--raters", str(c.raters), "--noise", str(c.noise),
                      "--overlap", str(overlap), "--seed", str(seed))
        return True

    def _export(self, labels: Path, runs: list[Path]) -> bool:
        if labels.is_file():
            return False
        self._command("export", *map(str, runs), "--out", str(labels))
        return True

    def _train_reward(self, model: Path, labels: Path) -> bool:
        if (model / "metrics.json").is_file():
            return False
        partial = ["--overwrite"] if model.exists() else []  # an interrupted training left no finished model
        self._command("train-reward", "--labels", str(labels), "--out", str(model), *partial, *self.config.reward)
        return True

    def _train_prompts(self) -> str:
        """The demo's training prompts: rated in rounds 1 and 2, fine-tuned on, and the seen split's pool."""
        return self._prompt_sample("train", self.config.train_prompt_count, self.config.train_seed)

    def _heldout_prompts(self) -> str:
        """The unseen split's prompts."""
        return self._prompt_sample("heldout", self.config.heldout_prompt_count, self.config.heldout_seed)

    def _seen_prompts(self) -> str:
        """The seen split's prompts: the training prompts, or a fixed sample of them."""
        return self._prompt_sample(self._train_prompts(), self.config.seen_prompt_count, self.config.seen_seed, "seen")

    def _prompt_sample(self, prompts: str, count: int, seed: int, name: str | None = None) -> str:
        """`prompts` (a named set or a file), or a fixed sample of `count` of them written to OUT/<name>_prompts.txt."""
        if not count:
            return prompts
        path = self.out / f"{name or prompts}_prompts.txt"
        if not path.is_file():
            import random

            from align.generation.prompts import load_prompts

            texts = [p.text for p in load_prompts(prompts)]
            path.write_text("\n".join(sorted(random.Random(seed).sample(texts, min(count, len(texts))))) + "\n")
        return str(path)

    def _finetune_prompts(self) -> list[str]:
        """Fine-tuning trains on the demo's training prompts and evaluates on its two splits' pools."""
        train = self._train_prompts()
        return [f"prompts={train}", f"eval.seen_prompts={train}", f"eval.prompts={self._heldout_prompts()}"]

    def _baseline_images(self, model: str, baseline_run: str) -> list[str]:
        """Best-of-n's candidate 0 is the baseline's image: copied from the baseline's run, not drawn again."""
        return [f"reuse={self.out / baseline_run}"] if model == "best_of" else []

    def _compare(self) -> bool:
        out = self.out / "compare.json"
        if out.is_file():
            return False
        runs = [f"{model}={self.out / run}" for model, run in compared_runs(self.config)]
        self._command("compare", *[arg for run in runs for arg in ("--run", run)], "--out", str(out),
                      f"reward_model={self.out / 'reward-r1'}")
        return True

    def _evaluate(self, run: Path) -> bool:
        if (run / "metrics.json").is_file():
            return False
        self._command("evaluate", "--run", str(run), "--overwrite")  # without metrics.json, any scores are a stopped try's
        return True

    def _finetune(self, method: str) -> bool:
        out = self.out / method
        if (out / "metrics.json").is_file():
            return False
        config = self.config.methods()[method][1]
        reward = ["reward.kind=oracle"] if method in ORACLE_METHODS else [f"reward.path={self.out / 'reward-r1'}"]
        argv = ["finetune", "--config", default_config(f"shapes/{config}.yaml"), "--out", str(out),
                *(["--resume"] if (out / "checkpoints").is_dir() else []),
                f"model={self.config.model}", *self._finetune_prompts(), *reward, *getattr(self.config, config)]
        print("   $ t2i-align " + " ".join(argv), flush=True)
        if subprocess.run([sys.executable, "-m", "align.cli", *argv]).returncode:
            raise BadInput(f"the demo stopped: `t2i-align finetune` ({method}) failed; fix the cause above and rerun the demo to continue")
        return True


def _generated(run: Path) -> bool:
    """`generate` writes samples.parquet after its last image."""
    return (run / "samples.parquet").is_file()

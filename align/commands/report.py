"""`t2i-align report`: one self-contained report.html comparing the learned reward with CLIP score."""

HELP = "write report.html: the reward model against CLIP score on held-out ratings (ROC, scatter, disagreements)"


def add_arguments(parser) -> None:
    parser.add_argument("--reward-model", required=True, help="directory written by `t2i-align train-reward`")
    parser.add_argument("--labels", required=True, help="labels.parquet whose held-out ratings the report scores")
    parser.add_argument("--out", required=True, help="HTML file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing report")
    parser.add_argument("--pool", action="append", default=[], metavar="RUN",
                        help="run directory with several images per prompt for best-of-n curves (repeatable;"
                             " shapes world), e.g. a best-of-n run's candidates/")


def run(args) -> None:
    from align.reports.reward_report import write_report

    out = write_report(args.reward_model, args.labels, args.out, args.overwrite, args.pool)
    print(f"wrote {out}")

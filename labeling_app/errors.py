"""The one exception type that means "the input is wrong": the CLI prints it as one sentence, exit 2."""


class LabelingError(Exception):
    """Bad input to the labeling app: missing run dir, unknown labels.db schema, unknown rater …"""

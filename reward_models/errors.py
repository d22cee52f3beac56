"""The bad-input exception of the reward_models package (the CLI turns it into exit code 2)."""


class RewardModelError(Exception):
    """Input the user can fix: an unknown backbone, an empty or one-class label file, a missing image."""

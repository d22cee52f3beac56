"""Evaluation: oracle alignment, CLIP score and fidelity of a run's images."""

"""Generation: prompt sets and drawing a run directory of images from a pipeline."""

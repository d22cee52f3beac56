"""CLIP backbones, the learned reward model, its training, and the CLIP-score baseline."""

"""Reports: the reward-vs-CLIP-score report and the plots reports draw."""

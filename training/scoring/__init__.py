"""training.scoring."""

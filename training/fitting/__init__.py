"""training.fitting."""

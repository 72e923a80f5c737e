"""training.data."""

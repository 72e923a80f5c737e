"""training.hand."""

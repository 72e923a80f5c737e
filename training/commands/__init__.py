"""training.commands."""

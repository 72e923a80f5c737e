"""The synthetic world: a physiologically grounded stand-in for the armband, the camera and emg2pose's data."""

from training.synth.world import simulate

__all__ = ["simulate"]

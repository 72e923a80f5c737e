"""The recording station: webcam + MediaPipe + IK + EMG → session files (`mode2 record`)."""

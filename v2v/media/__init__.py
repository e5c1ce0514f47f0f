"""Pixels in and out: lazy video decoding and atomic writing, tensor conversions, DIS optical flow, shot-change
detection and the evaluation metrics.  Knows nothing about the model or the source extractors."""

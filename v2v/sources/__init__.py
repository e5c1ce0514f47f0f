"""Conditioning videos for the generator, as lazy, bounded streams: label maps (given or pseudo-labels of
footage), face and edge sketches, body poses; the mediapipe worker and the optional extras; and the source
recipe a model file records so that any raw video can be turned into the source it was trained on."""

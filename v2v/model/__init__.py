"""The model of the paper: configs, layers, flow warping, the generator F, the style encoder E, the
discriminators D_I / D_V, the losses, VGG19 and the safetensors checkpoint format.

torch and safetensors only: nothing here imports OpenCV or :mod:`v2v.sources` (a test enforces it), so
the network can be built, trained and loaded anywhere torch runs.
"""

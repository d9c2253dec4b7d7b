"""dermsynth trainer: DCGAN on ISIC dermoscopic images, checkpointed runs, ONNX export.

Importing this package does not import TensorFlow. Image files and the data set index are
:mod:`common.images` and :mod:`common.datasets`.
"""

__version__ = "0.1.0"

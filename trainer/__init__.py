"""dermsynth trainer: DCGAN on ISIC dermoscopic images, checkpointed runs, ONNX export.

Importing this package (or ``trainer.data``) does not import TensorFlow.
"""

__version__ = "0.1.0"

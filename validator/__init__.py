"""dermsynth validator: Xception features (ONNX Runtime), PCA/t-SNE views, nearest-neighbour
privacy checks, quality metrics and a pass/fail release gate. Never imports TensorFlow: its
Xception feature model comes from the trainer's ``python -m trainer export-xception``."""

__version__ = "0.1.0"

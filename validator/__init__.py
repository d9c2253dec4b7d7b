"""dermsynth validator: Xception features (ONNX Runtime), PCA/t-SNE views, nearest-neighbour
privacy checks, quality metrics and a pass/fail release gate. Never imports TensorFlow (only
``validator.xception_export`` does, lazily, on the training side)."""

__version__ = "0.1.0"

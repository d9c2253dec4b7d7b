"""dermsynth serving: a gRPC server that streams seeded synthetic lesion images from the exported
ONNX generator (``python -m serving serve``), and its client (``python -m serving.client``)."""

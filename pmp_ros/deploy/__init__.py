"""Deployment: the per-frame image path exported to ONNX (pmp-export-onnx) and run by ONNX Runtime behind the
same Predictor API as the PyTorch model (docs/deployment.md). ROS-free; text stays in PyTorch."""

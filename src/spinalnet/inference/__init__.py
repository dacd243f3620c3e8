"""Trained models for use: loading a checkpoint as a model, and exporting it (ONNX, TorchScript, .pt2)."""

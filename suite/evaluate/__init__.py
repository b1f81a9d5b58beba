"""Evaluation: run an upscaler over a paired dataset, score it, and record the result with provenance."""

from suite.evaluate.runner import evaluate

__all__ = ["evaluate"]

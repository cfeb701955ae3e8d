"""Models with several outputs: the first output is the one scored, the others are kept.

A model's first output (in the order of ``model.outputs``) is the one the task, the metric, the
labels and every figure refer to; put the head to judge first (``keras.Model(inputs, [main,
aux])``). The other outputs stay in every candidate and in the ``.tflite`` file (after the
scored one, which the package moves to the file's first output), and fine-tuning keeps them
close to what the original model predicts (see :func:`zenml_quant.training.keep_other_outputs`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["output_names", "scored", "scored_layer"]


def output_names(model: Any) -> tuple[str, ...]:
    """The names of a Keras model's outputs in order (the layers that produce them)."""
    names = getattr(model, "output_names", None)
    if names:
        return tuple(str(n) for n in names)
    return tuple(str(t.name).split("/")[0].split(":")[0] for t in model.outputs)


def scored(result: Any) -> np.ndarray:
    """The scored (first) output of what a Keras model's ``predict`` or call returned."""
    if isinstance(result, dict):
        result = list(result.values())
    if isinstance(result, (list, tuple)):
        result = result[0]
    return np.asarray(result)


def scored_layer(model: Any) -> Any:
    """The layer that computes the scored (first) output."""
    if len(model.outputs) == 1:
        return model.layers[-1]
    return model.get_layer(output_names(model)[0])

"""The one place that chooses the Keras flavour.

tfmot (QAT, pruning) only works with Keras 2 models, which live in the ``tf_keras`` package.
Setting ``TF_USE_LEGACY_KERAS=1`` (in :mod:`._keras_env`) before TensorFlow is first imported makes ``tf.keras`` resolve
to ``tf_keras`` too, so the TFLite converter and tfmot agree on the model class. Every module of
the package that needs TensorFlow imports it from here; nothing else touches the variable.
Keras 3 models (``keras.Model``) are still accepted where a model comes in: the converter takes
them through a concrete function.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras

from . import _keras_env  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

try:  # Keras 3 is installed alongside TensorFlow, but a user's environment may lack it.
    import keras as keras3

    if not keras3.__version__.startswith("3."):
        keras3 = None  # type: ignore[assignment]
except ImportError:  # pragma: no cover - depends on the environment
    keras3 = None  # type: ignore[assignment]

__all__ = ["MODEL_TYPES", "is_keras3_model", "is_tf_keras_model", "keras3", "tf", "tf_keras"]


def is_tf_keras_model(obj: object) -> bool:
    """True for a Keras 2 (``tf_keras``) model."""
    return isinstance(obj, tf_keras.Model)


def is_keras3_model(obj: object) -> bool:
    """True for a Keras 3 (``keras``) model."""
    return keras3 is not None and isinstance(obj, keras3.Model)


MODEL_TYPES: tuple[type[Any], ...] = (tf_keras.Model,) + (
    (keras3.Model,) if keras3 is not None else ()
)

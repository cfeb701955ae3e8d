"""The one place that sets ``TF_USE_LEGACY_KERAS``: imported before TensorFlow anywhere.

tfmot (QAT, pruning) works only with Keras 2 models (``tf_keras``). TensorFlow reads this
variable when it first loads, so it must be set before any import of TensorFlow; importing
``zenml_quant`` sets it without loading TensorFlow (which takes seconds), and
:mod:`zenml_quant._compat` imports this module before it imports TensorFlow.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
# TensorFlow's C++ start-up chatter (CUDA probing on a CPU box, oneDNN notes) buries our output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

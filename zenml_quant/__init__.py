"""zenml-quant: make a trained Keras model fit an edge device.

The core modules (``models``, ``datasets``, ``profile``, ``convert``, ``interpreter``,
``evaluate``, ``baseline``, ``report``) work without ZenML; ``zenml_quant.integration`` holds
the ZenML steps, materializers, pipelines and the CLI.
"""

# First, before any submodule can import TensorFlow: _compat picks the Keras flavour, which
# TensorFlow reads when it loads.
from . import _compat  # noqa: F401

__version__ = "0.1.0"

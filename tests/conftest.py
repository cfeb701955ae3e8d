"""Shared fixtures. Every test process gets its own throwaway ZenML store."""

from __future__ import annotations

import os
import tempfile

# Before anything imports ZenML: a private config dir means a private SQLite store, so test
# runs never touch the user's store and parallel workers never share one.
os.environ["ZENML_CONFIG_PATH"] = tempfile.mkdtemp(prefix="zq-test-zenml-")
os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
# Under pytest-xdist the main module is the worker bootstrap, from which ZenML cannot infer
# where step sources live.
os.environ["ZENML_CUSTOM_SOURCE_ROOT"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("ZENML_LOGGING_VERBOSITY", "WARN")

from pathlib import Path

import numpy as np
import pytest

from zenml_quant._compat import tf_keras

MNIST = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "mnist.npz"


@pytest.fixture(scope="session")
def digits():
    """The bundled 8x8 digits with a channel axis, as the demo CNN expects."""
    from zenml_quant.conform import conform_to_model
    from zenml_quant.datasets import load_digits

    return conform_to_model(load_digits(), input_shape=(8, 8, 1), num_classes=10)


@pytest.fixture(scope="session")
def digits_model(digits):
    """The demo CNN after a short training run (accuracy well above chance)."""
    from zenml_quant.demo import train_demo_model

    return train_demo_model(digits, epochs=4, seed=0)


@pytest.fixture(scope="session")
def digits_model_path(digits_model, tmp_path_factory):
    path = tmp_path_factory.mktemp("models") / "demo_cnn.keras"
    digits_model.save(path)
    return path


@pytest.fixture()
def tiny_dense():
    """A two-layer MLP on 16 features: fast to convert in every mode."""
    tf_keras.utils.set_random_seed(1)
    return tf_keras.Sequential(
        [
            tf_keras.layers.Input((16,)),
            tf_keras.layers.Dense(8, activation="relu"),
            tf_keras.layers.Dense(3),
        ],
        name="tiny_dense",
    )


@pytest.fixture()
def tiny_features():
    return np.random.default_rng(0).normal(size=(64, 16)).astype(np.float32)


@pytest.fixture(scope="session")
def wide_digits():
    """Digits with a larger validation split (25 % of train, 360 images), so half a point is
    more than one example. The models fitted on it train on the other 75 %, so this validation
    is still data they never saw."""
    from zenml_quant.conform import conform_to_model
    from zenml_quant.datasets import load_digits

    data = load_digits(validation_from="train", validation_fraction=0.25)
    return conform_to_model(data, input_shape=(8, 8, 1), num_classes=10)


@pytest.fixture(scope="session")
def hard_case(wide_digits):
    """A CNN whose bottleneck has one outlier activation channel: full int8 loses > 1 point."""
    import _zoo_path  # noqa: F401  (the repository root, for `zoo`)

    from zoo.hard_case import build_hard_case_model

    return build_hard_case_model(wide_digits, seed=0)

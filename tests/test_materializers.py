"""Save/load round trips of the plugin's materializers (on the throwaway local store)."""

from __future__ import annotations

import numpy as np
import pytest

from zenml_quant._compat import keras3
from zenml_quant.convert import convert_model, inspect_tflite
from zenml_quant.integration.materializers import (
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    TFLiteModelMaterializer,
)
from zenml_quant.types import LabeledDataset, TFLiteModel


@pytest.fixture()
def tmp_path():
    """A fresh folder inside the active (throwaway) artifact store: materializers refuse others."""
    import uuid
    from pathlib import Path

    from zenml.client import Client

    root = (
        Path(Client().active_stack.artifact_store.path) / "zq-materializer-tests" / uuid.uuid4().hex
    )
    root.mkdir(parents=True)
    return root


def _round_trip(materializer_cls, data, data_type, tmp_path):
    materializer = materializer_cls(uri=str(tmp_path))
    materializer.save(data)
    visualizations = materializer.save_visualizations(data)
    assert visualizations and all(tmp_path.as_posix() in uri for uri in visualizations)
    metadata = materializer.extract_metadata(data)
    return materializer_cls(uri=str(tmp_path)).load(data_type), metadata


def test_tf_keras_model_round_trip(digits_model, digits, tmp_path):
    loaded, metadata = _round_trip(
        KerasModelMaterializer, digits_model, type(digits_model), tmp_path
    )
    assert (tmp_path / "model.keras").exists()
    assert metadata["params"] == digits_model.count_params()
    np.testing.assert_allclose(
        loaded.predict(digits.x_test[:8], verbose=0),
        digits_model.predict(digits.x_test[:8], verbose=0),
        atol=1e-6,
    )


def test_keras3_model_round_trip(tmp_path):
    if keras3 is None:
        pytest.skip("Keras 3 is not installed")
    model = keras3.Sequential([keras3.Input((5,)), keras3.layers.Dense(3)])
    loaded, metadata = _round_trip(KerasModelMaterializer, model, type(model), tmp_path)
    assert metadata["flavour"] == "keras3"
    x = np.ones((2, 5), np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_tflite_round_trip_keeps_bytes_and_details(tiny_dense, tiny_features, tmp_path):
    model = convert_model(tiny_dense, "int8", representative_data=tiny_features)
    loaded, metadata = _round_trip(TFLiteModelMaterializer, model, TFLiteModel, tmp_path)
    assert loaded.content == model.content
    assert (tmp_path / "model.tflite").read_bytes() == model.content
    assert loaded.inputs == model.inputs and loaded.outputs == model.outputs
    assert loaded.operators == model.operators and loaded.options == model.options
    assert metadata["size_bytes"] == model.size_bytes


def test_failed_tflite_round_trip_keeps_error(tmp_path):
    failed = inspect_tflite(b"junk", mode="int16x8")
    loaded, _ = _round_trip(TFLiteModelMaterializer, failed, TFLiteModel, tmp_path)
    assert loaded.error == failed.error and not loaded.ok


def test_dataset_round_trip(digits, tmp_path):
    loaded, metadata = _round_trip(LabeledDatasetMaterializer, digits, LabeledDataset, tmp_path)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(digits, name))
    assert loaded.class_names == digits.class_names
    assert loaded.preprocessing == digits.preprocessing
    assert metadata["test_examples"] == len(digits.y_test)

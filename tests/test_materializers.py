"""Save/load round trips of the plugin's materializers (on the throwaway local store)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from zenml_quant._compat import keras3
from zenml_quant.convert import convert_model, inspect_tflite
from zenml_quant.datasets import validate_dataset
from zenml_quant.integration.materializers import (
    CalibratedModelMaterializer,
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
    TFLiteModelMaterializer,
)
from zenml_quant.types import CalibratedModel, LabeledDataset, Preprocessing, TFLiteModel


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


def test_calibrated_model_round_trip_still_quantizes_alike(tiny_dense, tiny_features, tmp_path):
    from zenml_quant.calibration import calibrate, check_calibrated, int8_from_calibrated
    from zenml_quant.candidates import calibrate_candidate

    calibrated = calibrate(tiny_dense, tiny_features)
    loaded, metadata = _round_trip(
        CalibratedModelMaterializer, calibrated, CalibratedModel, tmp_path
    )
    assert (tmp_path / "calibrated.tflite").read_bytes() == calibrated.content
    assert dataclasses.asdict(loaded) == dataclasses.asdict(calibrated)
    assert metadata == {
        "ok": True,
        "samples": len(tiny_features),
        "size_bytes": calibrated.size_bytes,
    }
    check_calibrated(loaded, tiny_dense, tiny_features)  # still recognised as this model's
    assert int8_from_calibrated(loaded).content == int8_from_calibrated(calibrated).content

    failed = calibrate_candidate(tiny_dense, representative_data=None, options=None)
    (tmp_path / "failed").mkdir()
    loaded, metadata = _round_trip(
        CalibratedModelMaterializer, failed, CalibratedModel, tmp_path / "failed"
    )
    assert not loaded.ok and loaded.error == failed.error and metadata["ok"] is False


def test_dataset_round_trip(digits, tmp_path):
    loaded, metadata = _round_trip(LabeledDatasetMaterializer, digits, LabeledDataset, tmp_path)
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(digits, name))
    assert loaded.class_names == digits.class_names
    assert loaded.preprocessing == digits.preprocessing
    assert metadata["test_examples"] == len(digits.y_test)
    assert digits.validation_source.startswith("validation: 180 examples held out from the test")
    assert loaded.validation_source == metadata["validation_source"] == digits.validation_source
    for field in dataclasses.fields(LabeledDataset):  # every other field too (task, metric...)
        if not field.name.startswith(("x_", "y_")):
            assert getattr(loaded, field.name) == getattr(digits, field.name), field.name
    assert f"Splits: {digits.validation_source}." in (tmp_path / "summary.md").read_text()


def test_values_dataset_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = {
        s: rng.random((n, 3), dtype=np.float32) for s, n in (("train", 8), ("val", 4), ("test", 4))
    }
    y = {s: rng.normal(size=(len(v), 2)).astype(np.float32) for s, v in x.items()}
    y["test"][0] = [-7.5, 9.25]  # the extremes the summary must show
    data = LabeledDataset(
        **{f"x_{s}": v for s, v in x.items()},
        **{f"y_{s}": v for s, v in y.items()},
        class_names=(),
        preprocessing=Preprocessing(1.0, 0.0, False, False, "npz:r.npz"),
        validation_source="validation: x_val from r.npz (4); test: x_test (4)",
    )
    validate_dataset(data)
    loaded, metadata = _round_trip(LabeledDatasetMaterializer, data, LabeledDataset, tmp_path)
    for s in x:
        np.testing.assert_array_equal(getattr(loaded, f"y_{s}"), y[s])
    assert loaded.y_test.dtype == np.float32 and not loaded.has_classes
    assert loaded.validation_source == data.validation_source
    assert (metadata["labels"], metadata["num_classes"]) == ("values", 0)
    summary = (tmp_path / "summary.md").read_text()
    assert "values of shape `(2,)`" in summary and "| -7.5 |" in summary and "| 9.25 |" in summary


def test_dataset_saved_before_validation_source_still_loads(digits, tmp_path):
    materializer = LabeledDatasetMaterializer(uri=str(tmp_path))
    materializer.save(digits)
    meta_file = tmp_path / "dataset_meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["validation_source"]  # the layout of artifacts written before the field existed
    meta_file.write_text(json.dumps(meta))
    loaded = LabeledDatasetMaterializer(uri=str(tmp_path)).load(LabeledDataset)
    assert loaded.validation_source == "" and loaded.class_names == digits.class_names

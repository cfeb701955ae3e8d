"""Models with several inputs: data keyed ``x_<split>_<input name>``, matched to the model's
inputs by name, through loading, conversion, the interpreter, compress and the search."""

from __future__ import annotations

import _zoo_path  # noqa: F401  (puts the repository root on sys.path for `zoo`)
import numpy as np
import pytest
from _end_to_end import compress_run, short_search

from zenml_quant import inputs
from zenml_quant._compat import tf_keras
from zenml_quant.conform import fit_to_model
from zenml_quant.convert import convert_model
from zenml_quant.datasets import load_npz
from zenml_quant.errors import InvalidDatasetError
from zenml_quant.interpreter import measure_latency, run_tflite
from zenml_quant.models import check_model
from zoo import write_npz
from zoo.data import two_input_data
from zoo.vision import two_input_net

layers = tf_keras.layers


@pytest.fixture(scope="module")
def two_input(tmp_path_factory):
    """A trained two-input classifier (image + feature vector) and its data file; either input
    alone caps accuracy at 50 %."""
    root = tmp_path_factory.mktemp("two_input")
    arrays = two_input_data(900, 300, seed=0)
    tf_keras.utils.set_random_seed(0)
    model = two_input_net(filters=4)
    model.compile(
        optimizer=tf_keras.optimizers.Adam(0.01),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = {name: arrays[f"x_train_{name}"] for name in ("image", "meta")}
    model.fit(x, arrays["y_train"], epochs=8, batch_size=32, verbose=0)
    model.save(root / "two.keras")
    return model, write_npz(root / "two.npz", arrays), arrays


def test_pack_keeps_rows_together_and_parts_come_back():
    image = np.arange(24, dtype=np.float32).reshape(6, 2, 2)
    meta = np.arange(6, dtype=np.int64)
    x = inputs.pack({"image": image, "meta": meta})
    assert inputs.is_multi(x) and len(x) == 6 and inputs.input_names(x) == ("image", "meta")
    picked = x[[4, 1]]
    assert np.array_equal(picked["image"], image[[4, 1]]) and picked["meta"].tolist() == [4, 1]
    assert inputs.example_shape(x) == (("image", (2, 2)), ("meta", ()))
    assert inputs.describe_shape(x) == "image (2, 2), meta ()"
    assert set(inputs.for_keras(x)) == {"image", "meta"}
    with pytest.raises(ValueError, match="different numbers of examples"):
        inputs.pack({"image": image, "meta": meta[:5]})
    plain = np.zeros((3, 4), np.float32)
    assert inputs.for_keras(plain) is plain and not inputs.is_multi(plain)


def test_npz_inputs_are_read_per_key_scaled_and_validated(tmp_path):
    arrays = two_input_data(120, 60, n_val=30, seed=1)
    arrays["x_train_image"] = (arrays["x_train_image"] * 255).astype(np.uint8)
    for split in ("val", "test"):
        arrays[f"x_{split}_image"] = (arrays[f"x_{split}_image"] * 255).astype(np.uint8)
    data = load_npz(write_npz(tmp_path / "d.npz", arrays))
    assert inputs.input_names(data.x_train) == ("image", "meta")
    assert len(data.x_val) == 30 and "x_val from d.npz" in data.validation_source
    # Integer pixels are scaled, float features kept as they are.
    assert data.x_train["image"].dtype == np.float32 and data.x_train["image"].max() <= 1.0
    assert np.array_equal(data.x_train["meta"], arrays["x_train_meta"])
    assert data.preprocessing.applied

    missing = {k: v for k, v in arrays.items() if k != "x_test_meta"}
    with pytest.raises(InvalidDatasetError, match=r"lacks the keys \['x_test_meta'\]"):
        load_npz(write_npz(tmp_path / "missing.npz", missing))
    half_val = {k: v for k, v in arrays.items() if k != "x_val_meta"}
    with pytest.raises(InvalidDatasetError, match="x_val_image, y_val but not x_val_meta"):
        load_npz(write_npz(tmp_path / "half.npz", half_val))
    short = dict(arrays, x_train_meta=arrays["x_train_meta"][:-1])
    with pytest.raises(InvalidDatasetError, match="train inputs .* disagree"):
        load_npz(write_npz(tmp_path / "short.npz", short))
    nan = dict(arrays, x_test_meta=np.full_like(arrays["x_test_meta"], np.nan))
    with pytest.raises(InvalidDatasetError, match=r"test \(meta\) features contain"):
        load_npz(write_npz(tmp_path / "nan.npz", nan))


def test_the_data_is_matched_to_the_model_by_input_name(two_input, tmp_path):
    model, path, arrays = two_input
    check_model(model)  # two named inputs are accepted
    data = fit_to_model(model, load_npz(path))
    assert inputs.input_names(data.x_train) == ("image", "meta")  # the model's order
    assert data.task == "classification"

    renamed = {k.replace("_meta", "_extra"): v for k, v in arrays.items()}
    with pytest.raises(InvalidDatasetError, match=r"\(extra, image\) are not the model's"):
        fit_to_model(model, load_npz(write_npz(tmp_path / "renamed.npz", renamed)))
    one = {
        "x_train": arrays["x_train_meta"],
        "y_train": arrays["y_train"],
        "x_test": arrays["x_test_meta"],
        "y_test": arrays["y_test"],
    }
    with pytest.raises(InvalidDatasetError, match="x_train_image, x_train_meta"):
        fit_to_model(model, load_npz(write_npz(tmp_path / "one.npz", one)))


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_tflite_inputs_are_fed_by_name(two_input, mode):
    model, path, _ = two_input
    data = fit_to_model(model, load_npz(path))
    tflite = convert_model(model, mode, representative_data=data.x_train)
    assert tflite.ok, tflite.error
    x = data.x_test
    keras = model.predict(inputs.for_keras(x), verbose=0)
    # Fields in the other order: the interpreter matches them by name, not by position.
    swapped = inputs.pack({"meta": x["meta"], "image": x["image"]})
    got = run_tflite(tflite, swapped, batch_size=64)
    assert got.shape == keras.shape
    agree = np.mean(got.argmax(1) == keras.argmax(1))
    assert agree == 1.0 if mode == "float32" else agree > 0.95
    if mode == "float32":
        np.testing.assert_allclose(got, keras, atol=1e-4)
    assert measure_latency(tflite, x[0], runs=5, warmup=1).p50_ms > 0


def test_compress_and_search_run_a_two_input_model_end_to_end(two_input, tmp_path):
    model, path, _ = two_input
    run = compress_run(path.with_suffix(".keras"), path)
    summary = run.steps["zq_summarize_run"].outputs["zq_run_summary"][0].load()
    assert summary.baseline.accuracy > 0.7  # both inputs are used: one alone caps at 50 %
    rows = {c.name: c for c in summary.candidates}
    assert set(rows) == {"float32", "int8", "mixed", "qat"}
    for name, row in rows.items():
        assert row.ok, (name, row.reason)
        assert row.accuracy > 0.6 and row.size_bytes > 0
    assert rows["float32"].accuracy == pytest.approx(summary.baseline.accuracy, abs=1e-9)
    sensitivity = run.steps["zq_profile_sensitivity"].outputs["zq_sensitivity"][0].load()
    assert len(sensitivity) > 0 and {"image_conv1", "meta_dense"} <= set(sensitivity["layer"])

    data = fit_to_model(model, load_npz(path))
    result = short_search(model, data)
    assert result.records[0].ok
    assert len(result.records) == 3 and all(r.ok for r in result.records), [
        r.error for r in result.records
    ]

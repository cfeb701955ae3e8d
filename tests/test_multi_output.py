"""Models with several outputs: the first is scored (labels, metric, every figure), the others
stay in every candidate and are kept close to the original's predictions while fine-tuning."""

from __future__ import annotations

import numpy as np
import pytest
from _end_to_end import compress_run, short_search

from zenml_quant._compat import tf_keras
from zenml_quant.conform import fit_to_model
from zenml_quant.convert import convert_model
from zenml_quant.datasets import load_npz
from zenml_quant.interpreter import make_interpreter, run_tflite
from zenml_quant.models import check_model, final_activation, num_outputs
from zenml_quant.qat import QATOptions, quantization_aware_training

layers = tf_keras.layers


@pytest.fixture(scope="module")
def two_heads(tmp_path_factory):
    """A 3-class classifier ``zlogits`` with an auxiliary regression head ``aux``: named so
    that the converter puts ``aux`` first in the file, as it orders outputs by tensor."""
    root = tmp_path_factory.mktemp("two_heads")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(900, 6)).astype(np.float32)
    y = (x[:, 0] > 0.4).astype(np.int64) + (x[:, 1] > 0).astype(np.int64)
    aux = (x[:, 2] * 2 + x[:, 3]).astype(np.float32)
    np.savez(root / "d.npz", x_train=x[:600], y_train=y[:600], x_test=x[600:], y_test=y[600:])
    tf_keras.utils.set_random_seed(0)
    inputs = layers.Input((6,), name="features")
    h = layers.Dense(24, activation="relu", name="shared")(inputs)
    model = tf_keras.Model(
        inputs,
        [layers.Dense(3, name="zlogits")(h), layers.Dense(1, name="aux")(h)],
        name="two_heads",
    )
    model.compile(
        optimizer=tf_keras.optimizers.Adam(0.01),
        loss=[tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True), "mse"],
    )
    model.fit(x[:600], [y[:600], aux[:600]], epochs=25, batch_size=32, verbose=0)
    model.save(root / "two_heads.keras")
    return model, root / "d.npz", x[600:]


def test_the_first_output_is_scored(two_heads):
    model, path, _ = two_heads
    check_model(model)
    assert num_outputs(model) == 3 and final_activation(model) is None
    data = fit_to_model(model, load_npz(path))
    assert data.task == "classification" and data.num_classes == 3


@pytest.mark.parametrize("mode", ["float32", "int8"])
def test_the_file_leads_with_the_scored_output(two_heads, mode):
    model, path, x_test = two_heads
    data = fit_to_model(model, load_npz(path))
    tflite = convert_model(model, mode, representative_data=data.x_train)
    assert tflite.ok, tflite.error
    details = make_interpreter(tflite.content).get_output_details()
    assert len(details) == 2 and list(details[0]["shape"])[-1] == 3  # zlogits, not aux
    signature = make_interpreter(tflite.content).get_signature_runner().get_output_details()
    assert set(signature) == {"zlogits", "aux"}
    keras_logits = model.predict(x_test, verbose=0)[0]
    got = run_tflite(tflite, x_test)
    assert got.shape == keras_logits.shape
    if mode == "float32":
        np.testing.assert_allclose(got, keras_logits, atol=1e-4)
    else:
        assert np.mean(got.argmax(1) == keras_logits.argmax(1)) > 0.95


def test_qat_trains_the_scored_head_and_keeps_the_other(two_heads):
    model, path, x_test = two_heads
    data = fit_to_model(model, load_npz(path))
    result = quantization_aware_training(model, data, options=QATOptions(epochs=3))
    assert result.tflite_accuracy > 0.8 and result.keras_accuracy > 0.8
    before = model.predict(x_test, verbose=0)[1]
    after = result.keras_model.predict(x_test, verbose=0)[1]
    # The aux head had no labels here: it was held to the original's predictions.
    spread = float(np.std(before))
    assert float(np.sqrt(np.mean((after - before) ** 2))) < 0.25 * spread
    # Early stopping watched the scored head's accuracy, logged under its layer's name.
    assert any(k.startswith("val_") and k.endswith("zlogits_accuracy") for k in result.history)


def test_compress_and_search_run_a_two_output_model(two_heads, tmp_path):
    model, path, _ = two_heads
    run = compress_run(path.with_name("two_heads.keras"), path)
    summary = run.steps["zq_summarize_run"].outputs["zq_run_summary"][0].load()
    rows = {c.name: c for c in summary.candidates}
    assert set(rows) == {"float32", "int8", "mixed", "qat"}
    for name, row in rows.items():
        assert row.ok and row.accuracy > 0.8, (name, row.reason)
    assert rows["float32"].accuracy == pytest.approx(summary.baseline.accuracy, abs=1e-9)

    result = short_search(model, fit_to_model(model, load_npz(path)))
    assert len(result.records) == 3 and all(r.ok for r in result.records), [
        r.error for r in result.records
    ]

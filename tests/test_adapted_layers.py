"""A Normalization layer adapted to raw pixels keeps normalising in every copy the package makes
(QAT's, the search's edited models): tfmot's layer-by-layer copy normalised with mean 0 and
variance 1, so QAT trained on raw pixels and its best-epoch restore landed at chance."""

from __future__ import annotations

import _zoo_path  # noqa: F401  (puts the repository root on sys.path for `zoo`)
import numpy as np
import pytest

from zenml_quant.conform import fit_to_model
from zenml_quant.datasets import load_npz
from zenml_quant.models import load_model
from zenml_quant.qat import QATOptions, quantization_aware_training
from zenml_quant.search.edits import EditPlan
from zenml_quant.search.rebuild import apply_edits
from zoo import ZOO, write_npz


@pytest.fixture(scope="module")
def normalization_cnn(tmp_path_factory):
    entry = ZOO["normalization_cnn"]
    model, arrays = entry.build_tiny(seed=0), entry.tiny_data(seed=0)
    entry.train(model, arrays, epochs=2)
    root = tmp_path_factory.mktemp("norm")
    model.save(root / "norm.keras")
    model = load_model(root / "norm.keras")  # as a user's model arrives: from a file
    path = write_npz(root / "raw.npz", arrays)
    return model, fit_to_model(model, load_npz(path, scale=1, offset=0))


def _normalised(model, x):
    return np.asarray(model.get_layer("normalization")(x, training=False))


def test_the_qat_copy_normalises_like_the_original(normalization_cnn):
    model, data = normalization_cnn
    x = data.x_test[:16]
    assert x.max() > 100  # raw 0-255 pixels: the layer has real work to do
    expected = _normalised(model, x)
    assert abs(float(expected.mean())) < 1.0
    result = quantization_aware_training(
        # No early stopping: its best-epoch restore (set_weights) would refresh the layer at the
        # end and hide that it trained without normalising.
        model,
        data,
        options=QATOptions(epochs=1, learning_rate=1e-9, early_stopping_patience=0),
    )
    np.testing.assert_allclose(_normalised(result.keras_model, x), expected, rtol=1e-5, atol=1e-4)


def test_an_unedited_search_copy_computes_what_the_original_computes(normalization_cnn):
    model, data = normalization_cnn
    edited = apply_edits(model, EditPlan(model=model.name)).model
    x = data.x_test[:16]
    np.testing.assert_allclose(_normalised(edited, x), _normalised(model, x), atol=1e-4)
    np.testing.assert_allclose(
        edited(x, training=False), model(x, training=False), rtol=1e-4, atol=1e-5
    )

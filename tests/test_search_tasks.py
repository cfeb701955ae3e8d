"""The search on models that are not classifiers: trials are fine-tuned on the task's targets
and scored, rewarded and ranked by its metric (MAE here: lower is better)."""

from __future__ import annotations

import numpy as np

from zenml_quant._compat import tf_keras
from zenml_quant.conform import fit_to_model
from zenml_quant.datasets import load_npz
from zenml_quant.metrics import METRICS
from zenml_quant.search.finetune import FineTuneOptions
from zenml_quant.search.loop import SearchOptions, search_architecture
from zenml_quant.search.trial import EvaluationOptions
from zenml_quant.targets import Targets

layers = tf_keras.layers


def _regression(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6) + 0.3 * x[:, 0] ** 2).astype(np.float32)
    np.savez(tmp_path / "reg.npz", x_train=x[:240], y_train=y[:240], x_test=x[240:], y_test=y[240:])
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            layers.Input((6,)),
            layers.Dense(32, activation="relu", name="hidden"),
            layers.Dense(16, activation="relu", name="hidden2"),
            layers.Dense(1, name="out"),
        ],
        name="regressor",
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x[:240], y[:240], epochs=40, batch_size=32, verbose=0)
    return model, fit_to_model(model, load_npz(tmp_path / "reg.npz"))


def test_search_on_a_regression_scores_trials_by_mae(tmp_path):
    model, dataset = _regression(tmp_path)
    assert dataset.metric["name"] == "mae"
    options = SearchOptions(
        max_trials=3,
        batch_size=1,
        seed=0,
        evaluation=EvaluationOptions(
            fine_tune=FineTuneOptions(epochs=1, steps_per_epoch=4, batch_size=32),
            calibration_samples=32,
            measure_latency=False,
        ),
    )
    # Targets given in top-1 terms are read in the dataset's metric: a drop of 0.5 MAE.
    result = search_architecture(
        model,
        dataset,
        targets=Targets(max_quality_drop=0.5, max_size_bytes=100_000),
        options=options,
    )
    assert result.targets.metric == METRICS["mae"]
    original = result.records[0]
    x, y = dataset.split("validation")
    keras_mae = float(np.mean(np.abs(model.predict(x, verbose=0).reshape(-1) - y)))
    assert original.ok and abs(original.keras_accuracy - keras_mae) < 1e-4
    scored = [r for r in result.records[1:] if r.ok]
    assert scored, [r.error for r in result.records]
    # Every suggestion is within the floor, in MAE's direction (lower is better).
    floor = result.targets.quality_floor(original.keras_accuracy)
    for trial in result.pareto:
        assert result.record(trial).accuracy <= floor + 1e-9
    # The report speaks MAE, not percent.
    from zenml_quant.report.search import search_html

    page = search_html(result.records, result.pareto, original=original, targets=result.targets)
    assert "mae, lower is better" in page and f"mae {original.accuracy:.4g}" in page

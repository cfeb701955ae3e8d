"""compress_pipeline on a regression net and an anomaly-detection autoencoder: every figure,
budget and gate check is in the task's metric (MAE, reconstruction AUC), not accuracy."""

from __future__ import annotations

import numpy as np
import pytest
from _end_to_end import compress_run

from zenml_quant._compat import tf_keras

layers = tf_keras.layers


def _split_npz(path, x, y):
    n = len(x)
    train, test = slice(0, n // 2), slice(n // 2, n)
    np.savez(path, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])


@pytest.fixture(scope="module")
def regression_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 8)).astype(np.float32)
    y = x @ rng.normal(size=8) + 0.5 * np.sin(x[:, 0]) + rng.normal(scale=0.05, size=600)
    _split_npz(root / "data.npz", x, y.astype(np.float32))
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [layers.Input((8,)), layers.Dense(16, activation="relu"), layers.Dense(1)],
        name="regressor",
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    model.fit(x[:300], y[:300], epochs=30, batch_size=32, verbose=0)
    model.save(root / "regressor.keras")
    return root / "regressor.keras", root / "data.npz"


@pytest.fixture(scope="module")
def autoencoder_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("autoencoder")
    rng = np.random.default_rng(4)
    basis = rng.normal(size=(3, 16))
    normal = rng.normal(size=(600, 3)) @ basis
    anomalies = rng.normal(scale=2.0, size=(120, 16))
    x = np.concatenate([normal, anomalies]).astype(np.float32)
    labels = np.concatenate([np.zeros(600), np.ones(120)]).astype(np.int64)
    order = rng.permutation(len(x))
    x, labels = x[order], labels[order]
    _split_npz(root / "data.npz", x, labels)
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential(
        [
            layers.Input((16,)),
            layers.Dense(12, activation="relu"),
            layers.Dense(3),
            layers.Dense(12, activation="relu"),
            layers.Dense(16),
        ],
        name="autoencoder",
    )
    model.compile(optimizer=tf_keras.optimizers.Adam(0.01), loss="mse")
    train = x[:360][labels[:360] == 0]
    model.fit(train, train, epochs=40, batch_size=32, verbose=0)
    model.save(root / "autoencoder.keras")
    return root / "autoencoder.keras", root / "data.npz"


def _run(model_path, data_path, targets):
    run = compress_run(model_path, data_path, targets)
    return run.steps["zq_summarize_run"].outputs["zq_run_summary"][0].load()


def test_regression_is_scored_budgeted_and_gated_by_mae(regression_files):
    summary = _run(*regression_files, targets={"max_quality_drop": 0.05})
    payload = summary.to_dict()
    assert payload["metric"]["name"] == "mae" and payload["metric"]["direction"] == (
        "lower is better"
    )
    assert payload["metric"]["task"] == "regression"
    assert "held out from the test split" in payload["validation"]
    assert 0 < summary.baseline.accuracy < 1.0  # an MAE, far below the targets' spread
    rows = {c.name: c for c in summary.candidates}
    assert set(rows) == {"float32", "int8", "mixed", "qat"}
    assert rows["float32"].accuracy == pytest.approx(summary.baseline.accuracy, rel=1e-4)
    for name in ("int8", "mixed", "qat"):
        assert rows[name].ok, rows[name].reason
    gate = summary.gate
    assert gate.targets["metric"]["name"] == "mae"
    drops = [c for c in gate.per_candidate["int8"] if c.name == "quality_drop"]
    assert drops and "mae worse by" in drops[0].reason
    if gate.passed:  # whatever passes is within 0.05 MAE of the Keras model
        chosen = rows[gate.selected]
        assert chosen.accuracy <= summary.baseline.accuracy + 0.05 + 1e-9


def test_autoencoder_reports_reconstruction_auc_and_gates_on_it(autoencoder_files):
    summary = _run(*autoencoder_files, targets={"min_quality": 0.8})
    assert summary.metric.name == "reconstruction_auc"
    assert summary.baseline.task == "reconstruction"
    assert summary.baseline.accuracy > 0.9  # the anomalies are far off the normal subspace
    rows = {c.name: c for c in summary.candidates}
    assert rows["qat"].ok, rows["qat"].reason
    # QAT trained to reconstruct normal inputs (not against the labels), so it still
    # separates anomalies: training against 0/1 labels would have wrecked the AUC.
    assert rows["qat"].accuracy > 0.85
    checks = dict((n, r) for n, _, r in rows["int8"].gate_checks)
    assert "reconstruction_auc" in checks["quality"]


def test_a_target_in_the_wrong_units_stops_the_run_at_loading(regression_files):
    from zenml_quant.integration import CompressConfig, DataConfig, GateConfig, compress_pipeline

    config = CompressConfig(
        modes=("float32",),
        data=DataConfig(source=str(regression_files[1])),
        gate=GateConfig(targets={"min_quality": -1.0}),
    )
    with pytest.raises(Exception, match="min_quality"):
        compress_pipeline.with_options(enable_cache=False)(
            model_path=str(regression_files[0]), config=config
        )

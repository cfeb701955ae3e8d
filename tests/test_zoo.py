"""The zoo of real architectures: shapes, sizes and names as published, data that can be learned.

Every tiny model is trained for two short epochs on a few hundred synthetic examples: the
second epoch's loss must be below the first's, and where two epochs are enough to learn the
task (no BatchNorm statistics still catching up), the test-split metric must beat chance.
"""

from __future__ import annotations

import _zoo_path  # noqa: F401  (puts the repository root, where zoo/ lives, on sys.path)
import numpy as np
import pytest

import zoo
from zenml_quant._compat import is_keras3_model, tf_keras
from zenml_quant.datasets import load_npz
from zoo import ZOO, data
from zoo.training import METRICS, TASKS, chance, model_inputs

L = tf_keras.layers

# Entries whose tiny model learns its task in two epochs well enough to score above chance on
# held-out data, with the margin asserted. The others (deep nets with BatchNorm, whose moving
# statistics lag behind after 20 steps) are held to a falling loss only.
BEATS_CHANCE_BY = {
    "lstm_classifier": 0.2,
    "gru_classifier": 0.2,
    "conv1d_classifier": 0.2,
    "conv1d_detector": 0.3,  # AUC, chance 0.5
    "two_input_net": 0.15,
    "bn_after_pooling": 0.2,
    "rescaling_cnn": 0.2,
    "normalization_cnn": 0.2,
    "keras3_cnn": 0.1,
}


def _names(model) -> list[str]:
    return [layer.name for layer in model.layers]


def cifar10_or_skip(**kwargs) -> data.Arrays:
    """The local CIFAR-10 subset, or a pytest skip that says where it was looked for."""
    try:
        return data.cifar10(**kwargs)
    except data.DatasetUnavailable as exc:
        pytest.skip(str(exc))


# --- the registry -------------------------------------------------------------------------


def test_registry_entries_are_consistent():
    metric_of_task = {
        "classification": "top1",
        "binary": "auc",
        "regression": "mae",
        "reconstruction": "reconstruction_auc",
    }
    assert set(metric_of_task) == set(TASKS) and set(metric_of_task.values()) == set(METRICS)
    expected = {
        "mobilenet_v2", "ds_cnn", "resnet8", "resnet8_reference", "lstm_classifier",
        "gru_classifier", "conv1d_classifier", "conv1d_detector", "dense_autoencoder",
        "regression_net", "two_input_net", "bn_after_pooling", "rescaling_cnn",
        "normalization_cnn", "keras3_cnn",
    }  # fmt: skip
    assert set(ZOO) == expected
    for name, entry in ZOO.items():
        assert entry.name == name
        assert entry.metric == metric_of_task[entry.task], name
        assert entry.tiny and entry.benchmark, name
    assert ZOO["resnet8_reference"].loss == "categorical_crossentropy"


@pytest.mark.parametrize("name", sorted(ZOO))
def test_tiny_model_trains_on_its_data(name):
    entry = ZOO[name]
    model = entry.build_tiny(seed=0)
    arrays = entry.tiny_data(seed=0)
    outputs = model.outputs[0].shape[-1]
    if entry.task == "reconstruction":
        assert model.output_shape == model.input_shape  # an autoencoder reproduces its input
    elif entry.task in ("classification", "binary"):
        assert set(np.unique(arrays["y_train"])) == set(range(max(outputs, 2)))

    history = entry.train(model, arrays, 2, learning_rate=1e-2)
    first, second = history.history["loss"]
    assert np.isfinite(second) and second < first, (name, first, second)
    if name in BEATS_CHANCE_BY:
        floor = chance(entry.metric, arrays) + BEATS_CHANCE_BY[name]
        assert entry.score(model, arrays) > floor, name
    if name == "regression_net":  # MAE: lower is better, so "beats chance" means below it
        assert entry.score(model, arrays) < 0.7 * chance("mae", arrays)
    if name == "resnet8_reference":  # trained on one-hot labels, as the reference is
        assert isinstance(model.loss, tf_keras.losses.CategoricalCrossentropy)
    # Keras numbers unnamed layers by a per-session counter (conv2d, conv2d_1, ...): after
    # all the models built so far, a second build gets the same names only if every layer
    # is named by the builder.
    assert _names(entry.build_tiny(seed=1)) == _names(model)


# --- published architectures -----------------------------------------------------------------


def test_resnet8_has_mlperf_tiny_parameter_count():
    model = zoo.resnet8()
    assert model.count_params() == 78_666
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 10)
    kinds = [type(layer).__name__ for layer in model.layers]
    assert kinds.count("Conv2D") == 9  # stem, two per stage, two 1x1 shortcuts
    assert kinds.count("Add") == 3
    assert model.get_layer("avg_pool").pool_size == (8, 8)
    assert model.get_layer("predictions").activation.__name__ == "softmax"
    assert model.optimizer is None  # uncompiled; the reference variant is the compiled one


def test_resnet8_reference_is_compiled_for_one_hot_labels():
    model = zoo.resnet8_reference(input_shape=(16, 16, 3), classes=4, filters=(4, 8, 8))
    assert model.loss == "categorical_crossentropy"
    one_hot = data.one_hot({"y_train": np.array([0, 3, 1])}, 4)["y_train"]
    assert one_hot.tolist() == [[1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]


def test_mobilenet_v2_equals_the_keras_application_layer_for_layer():
    mine = zoo.mobilenet_v2(alpha=0.35, input_shape=(32, 32, 3), classes=10)
    keras = tf_keras.applications.MobileNetV2(
        weights=None, alpha=0.35, input_shape=(32, 32, 3), classes=10
    )

    def described(layer):
        config = dict(layer.get_config())
        if type(layer).__name__ in ("InputLayer", "GlobalAveragePooling2D"):
            # Keras names these input_<n> and global_average_pooling2d_<n>, numbered by how
            # many this process made before (another test in the same worker may have).
            config.pop("name")
        return type(layer).__name__, config

    assert [described(a) for a in mine.layers] == [described(b) for b in keras.layers]
    # Parameters do not depend on the input size: the 96x96 default has the same count.
    assert zoo.mobilenet_v2().count_params() == keras.count_params() == 423_018


def test_mobilenet_v2_pads_before_every_strided_depthwise():
    full = zoo.mobilenet_v2(input_shape=(32, 32, 3), last_block_filters=32)
    shallow = ZOO["mobilenet_v2"].build_tiny()  # at most two blocks per stage
    for model, strided in ((full, [1, 3, 6, 13]), (shallow, [1, 3, 5, 9])):
        names = _names(model)
        for block in strided:
            depthwise = model.get_layer(f"block_{block}_depthwise")
            assert depthwise.strides == (2, 2) and depthwise.padding == "valid"
            pad = names.index(f"block_{block}_pad")
            assert names[pad + 1] == f"block_{block}_depthwise"
            # "same" geometry for an even input: the extra row and column at the bottom/right.
            assert model.get_layer(f"block_{block}_pad").padding == ((0, 1), (0, 1))
        pads = [n for n in names if n.endswith("_pad")]
        assert pads == [f"block_{b}_pad" for b in strided]
        assert any(n.endswith("_add") for n in names)
        assert all(
            isinstance(layer, L.ReLU) and layer.max_value == 6.0
            for layer in model.layers
            if layer.name.endswith("relu")
        )


def test_ds_cnn_matches_mlperf_tiny_kws():
    model = zoo.ds_cnn()
    assert model.input_shape == (None, 49, 10, 1) and model.output_shape == (None, 12)
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (10, 4) and stem.strides == (2, 2)
    assert sum(isinstance(layer, L.DepthwiseConv2D) for layer in model.layers) == 4
    assert model.get_layer("avg_pool").pool_size == (25, 5)  # the whole map after the stem
    conv, bn = 10 * 4 * 64 + 64, 4 * 64
    block = (3 * 3 * 64 + 64) + bn + (64 * 64 + 64) + bn
    assert model.count_params() == conv + bn + 4 * block + (64 * 12 + 12) == 24_908


def test_dense_autoencoder_matches_mlperf_tiny_anomaly_detection():
    model = zoo.dense_autoencoder()
    assert model.input_shape == model.output_shape == (None, 640)
    assert model.get_layer("bottleneck").units == 8
    dense = [layer.units for layer in model.layers if isinstance(layer, L.Dense)]
    assert dense == [128] * 4 + [8] + [128] * 4 + [640]
    dense_params = 640 * 128 + 128 + 3 * (128 * 128 + 128) + (128 * 8 + 8)
    dense_params += 8 * 128 + 128 + 3 * (128 * 128 + 128) + 128 * 640 + 640
    assert model.count_params() == dense_params + 4 * (8 * 128 + 8) == 269_992


def test_sequence_and_regression_heads():
    lstm = zoo.lstm_classifier(timesteps=20, features=8, classes=5, units=16)
    assert lstm.input_shape == (None, 20, 8) and lstm.output_shape == (None, 5)
    assert lstm.get_layer("lstm").units == 16
    assert zoo.gru_classifier(units=16).get_layer("gru").units == 16
    conv = zoo.conv1d_classifier()
    assert conv.input_shape == (None, 64, 3)
    assert any(isinstance(layer, L.GlobalAveragePooling1D) for layer in conv.layers)
    detector = zoo.conv1d_classifier(classes=1)
    assert detector.get_layer("predictions").activation.__name__ == "sigmoid"
    regression = zoo.regression_net()
    assert regression.output_shape == (None, 1)
    assert regression.get_layer("prediction").activation.__name__ == "linear"
    assert zoo.regression_net(outputs=3).output_shape == (None, 3)


def test_structures_a_compression_tool_must_handle():
    pooled = zoo.bn_after_pooling(filters=4)
    layers = pooled.layers  # a chain, so each layer's input is the one listed before it
    norms = [i for i, layer in enumerate(layers) if isinstance(layer, L.BatchNormalization)]
    assert len(norms) == 2 and all(isinstance(layers[i - 1], L.MaxPooling2D) for i in norms)
    rescaling = zoo.rescaling_cnn(filters=4)
    assert isinstance(rescaling.layers[1], L.Rescaling)
    raw = data.image_data(64, 0, shape=(32, 32, 3), classes=10, raw=True, seed=3)["x_train"]
    assert raw.dtype == np.uint8 and raw.max() > 200  # raw pixels go in as they are
    normalization = zoo.normalization_cnn(filters=4, adapt_data=raw)
    layer = normalization.get_layer("normalization")
    np.testing.assert_allclose(np.ravel(layer.mean), raw.reshape(-1, 3).mean(axis=0), rtol=1e-4)
    two = zoo.two_input_net()
    assert two.input_names == ["image", "meta"]
    assert two.input_shape == [(None, 16, 16, 1), (None, 4)]


def test_keras3_cnn_is_a_keras3_file_the_tool_loads(tmp_path):
    from zenml_quant.models import load_model, model_flavour

    model = zoo.keras3_cnn(input_shape=(16, 16, 3), classes=4, filters=4)
    assert is_keras3_model(model)
    path = zoo.save_keras3_cnn(tmp_path / "cnn.keras", model)
    loaded = load_model(path)
    assert model_flavour(loaded) == "keras3"
    assert _names(loaded) == _names(model)
    x = data.image_data(8, 0, shape=(16, 16, 3), classes=4, seed=1)["x_train"]
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


# --- data ------------------------------------------------------------------------------------


def test_cifar10_loader_skips_cleanly_when_the_file_is_absent(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "SHARED_DATASETS", tmp_path)
    assert data.shared_dataset("cifar10.npz") is None
    with pytest.raises(data.DatasetUnavailable, match="cifar10.npz"):
        data.cifar10()
    with pytest.raises(pytest.skip.Exception, match="not shipped with the project"):
        cifar10_or_skip()
    with pytest.raises(FileNotFoundError):  # callers that know only the builtin error catch it
        ZOO["resnet8"].data(seed=0)


def test_cifar10_subset_loads_when_present():
    arrays = cifar10_or_skip(scale=True, limit_train=500, limit_test=200)
    assert arrays["x_train"].shape == (500, 32, 32, 3) and arrays["y_test"].shape == (200,)
    assert arrays["x_train"].dtype == np.float32 and 0 <= arrays["x_train"].min()
    assert arrays["x_train"].max() <= 1.0
    assert len(arrays["class_names"]) == 10 and arrays["class_names"][0] == "airplane"
    assert set(np.unique(arrays["y_train"])) == set(range(10))


@pytest.mark.parametrize(
    "make",
    [
        lambda seed: data.image_data(40, 20, shape=(8, 8, 3), classes=4, n_val=10, seed=seed),
        lambda seed: data.kws_data(40, 20, classes=4, n_val=10, seed=seed),
        lambda seed: data.sequence_data(40, 20, n_val=10, seed=seed),
        lambda seed: data.anomaly_data(40, 20, dim=32, n_val=10, seed=seed),
        lambda seed: data.regression_data(40, 20, outputs=2, n_val=10, seed=seed),
    ],
    ids=["image", "kws", "sequence", "anomaly", "regression"],
)
def test_generators_are_seeded_and_write_the_npz_the_tool_reads(make, tmp_path):
    arrays, again, other = make(0), make(0), make(1)
    assert sorted(arrays) == sorted(again)
    for key in arrays:
        np.testing.assert_array_equal(arrays[key], again[key])
    assert not np.array_equal(arrays["x_train"], other["x_train"])
    assert len(arrays["x_train"]) == len(arrays["y_train"]) == 40
    assert len(arrays["x_test"]) == len(arrays["y_test"]) == 20
    path = data.write_npz(tmp_path / "set", arrays)
    assert path.name == "set"  # written where asked, no ".npz" appended
    loaded = load_npz(path)  # with x_val given, every split comes back as written
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(loaded, f"x_{split}"), arrays[f"x_{split}"])
        np.testing.assert_allclose(getattr(loaded, f"y_{split}"), arrays[f"y_{split}"])
    with pytest.raises(ValueError, match="y_test"):
        data.write_npz(tmp_path / "bad.npz", {"x_train": arrays["x_train"]})


def test_anomaly_data_breaks_the_structure_of_normal_data():
    arrays = data.anomaly_data(300, 400, dim=64, seed=0)
    assert not arrays["y_train"].any()  # anomaly detectors train on normal data only
    y = arrays["y_test"]
    assert 0.3 < y.mean() < 0.7
    # The ideal linear autoencoder (PCA of normal data at the generator's rank) separates
    # anomalies by reconstruction error: the data carries what the task asks for.
    mean = arrays["x_train"].mean(axis=0)
    basis = np.linalg.svd(arrays["x_train"] - mean, full_matrices=False)[2][:4]
    centred = arrays["x_test"] - mean
    errors = np.sum((centred - centred @ basis.T @ basis) ** 2, axis=1)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, errors) > 0.95
    # ... while no single feature's scale gives them away.
    spread = arrays["x_test"][y == 1].std(axis=0) / arrays["x_test"][y == 0].std(axis=0)
    assert 0.7 < np.median(spread) < 1.3


def test_two_input_data_needs_both_inputs():
    arrays = data.two_input_data(200, 100, n_val=20, seed=0)
    assert sorted(arrays) == sorted(
        f"{kind}_{split}{suffix}"
        for split in ("train", "val", "test")
        for kind, suffix in (("x", "_image"), ("x", "_meta"), ("y", ""))
    )
    model = zoo.two_input_net()
    inputs = model_inputs(model, arrays, "train")
    assert set(inputs) == {"image", "meta"}
    y, image, meta = arrays["y_train"], inputs["image"][..., 0], inputs["meta"]
    # Label bit 0 is the sign of the first meta feature; bit 1 is the stripe orientation,
    # visible as which image axis changes more.
    np.testing.assert_array_equal(y % 2, (meta[:, 0] > 0).astype(int))
    across_rows = np.abs(np.diff(image, axis=1)).mean(axis=(1, 2))
    across_cols = np.abs(np.diff(image, axis=2)).mean(axis=(1, 2))
    np.testing.assert_array_equal(y // 2, (across_rows > across_cols).astype(int))


def test_sequence_classes_differ_only_in_order():
    arrays = data.sequence_data(2000, 10, classes=4, noise=0.0, seed=0)
    x, y = arrays["x_train"], arrays["y_train"]
    totals = x.sum(axis=1)  # what a model that ignores time sees: identical for every class
    np.testing.assert_allclose(totals, np.broadcast_to(totals[0], totals.shape), atol=1e-5)
    # ... while the sequences themselves differ by class, even aligned at the same start.
    firsts = [x[y == label][0] for label in range(4)]
    starts = [np.flatnonzero(np.abs(f).sum(axis=1))[0] for f in firsts]
    aligned = [f[s : s + 8] for f, s in zip(firsts, starts)]
    assert all(not np.allclose(aligned[0], other) for other in aligned[1:])
    binary = data.sequence_data(100, 10, classes=1, seed=0)
    assert set(np.unique(binary["y_train"])) == {0, 1}

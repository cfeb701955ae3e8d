"""Loaders, validation and model fitting of zenml_quant.datasets, on tiny synthetic data."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from zenml_quant.conform import conform_to_model
from zenml_quant.datasets import (
    check_classes,
    load_csv,
    load_dataset,
    load_digits,
    load_image_folder,
    load_npz,
    validate_dataset,
)
from zenml_quant.errors import InvalidDatasetError

MNIST = Path(__file__).parents[1].parent / "shared/datasets/mnist.npz"


def _arrays(n_train=40, n_test=10, shape=(4, 4), classes=4, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, size=(n_train, *shape), dtype=np.uint8),
        "y_train": np.arange(n_train) % classes,
        "x_test": rng.integers(0, 256, size=(n_test, *shape), dtype=np.uint8),
        "y_test": np.arange(n_test) % classes,
    }


def _npz(tmp_path, name="data.npz", **overrides):
    arrays = {**_arrays(), **overrides}
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def _png(path: Path, size=(6, 5), value=0, mode="L"):
    path.parent.mkdir(parents=True, exist_ok=True)
    color = value if mode == "L" else (value, 255 - value, 7)
    Image.new(mode, (size[1], size[0]), color).save(path)


def _image_folder(root: Path, classes=("cat", "dog"), per_class=5, size=(6, 5)):
    for c, name in enumerate(classes):
        for i in range(per_class):
            _png(root / name / f"{i}.png", size, value=40 * c + i)
    return root


# --- npz ---------------------------------------------------------------------------------------


def test_npz_round_trip_scales_integer_pixels(tmp_path):
    x_train = np.zeros((20, 3, 3), np.uint8)
    x_train[:, 0, 0] = 255
    path = _npz(
        tmp_path,
        x_train=x_train,
        y_train=np.arange(20) % 2,
        x_test=np.full((10, 3, 3), 255, np.uint8),
        y_test=np.arange(10) % 2,
    )
    data = load_npz(path, validation_fraction=0.2)
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int64
    assert data.x_train[:, 0, 0].tolist() == [1.0] * 20 and data.x_train[:, 1:, 1:].max() == 0
    # validation is 20 % of the test split; train is kept whole
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (20, 2, 8)
    assert data.x_val.min() == data.x_test.min() == 1.0
    assert data.class_names == ("0", "1")
    p = data.preprocessing
    assert (p.applied, p.channel_axis_added, p.source) == (True, False, f"npz:{path}")


def test_npz_validation_split_is_used_when_given_not_carved_from_train(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 255, (30, 4), dtype=np.uint8)
    x_val = np.full((8, 4), 7, np.uint8)  # recognisable: nothing in train is all 7s
    path = _npz(
        tmp_path,
        x_train=x_train,
        y_train=np.arange(30) % 3,
        x_val=x_val,
        y_val=np.arange(8) % 3,
        x_test=np.zeros((6, 4), np.uint8),
        y_test=np.arange(6) % 3,
    )
    data = load_npz(path, validation_fraction=0.5, validation_from="train")  # both ignored
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (30, 8, 6)  # train kept whole
    assert data.validation_source == "validation: x_val from data.npz (8); test: x_test (6)"
    np.testing.assert_allclose(data.x_val, x_val / 255, rtol=1e-6)
    np.testing.assert_array_equal(data.y_val, np.arange(8) % 3)
    # only one of the two keys is a mistake, said as such
    half = _npz(
        tmp_path,
        "half.npz",
        x_train=x_train,
        y_train=np.arange(30) % 3,
        x_val=x_val,
        x_test=x_val,
        y_test=np.arange(8) % 3,
    )
    with pytest.raises(InvalidDatasetError, match="x_val but not y_val"):
        load_npz(half)


def test_npz_custom_scale_and_offset_give_minus_one_to_one(tmp_path):
    x = np.tile(np.array([0, 255], np.uint8), (40, 1))
    data = load_npz(_npz(tmp_path, x_train=x, x_test=x[:10]), scale=2 / 255, offset=-1.0)
    np.testing.assert_allclose(data.x_test[:, 0], -1.0)
    np.testing.assert_allclose(data.x_test[:, 1], 1.0, rtol=1e-6)
    assert (data.preprocessing.scale, data.preprocessing.offset) == (2 / 255, -1.0)


def test_npz_float_features_are_left_alone(tmp_path):
    arrays = _arrays()
    x = arrays["x_train"].astype(np.float64) / 7
    data = load_npz(_npz(tmp_path, x_train=x, x_test=arrays["x_test"] / 7.0))
    assert not data.preprocessing.applied and data.preprocessing.scale == 1.0
    np.testing.assert_array_equal(data.x_train, x.astype(np.float32))


def test_npz_class_names_key_and_one_hot_labels(tmp_path):
    arrays = _arrays(classes=3)
    one_hot = np.eye(3, dtype=np.float32)[arrays["y_train"]]
    path = _npz(
        tmp_path,
        y_train=one_hot,
        y_test=arrays["y_test"] % 3,
        class_names=np.array(["a", "b", "c"]),
    )
    data = load_npz(path)
    assert data.class_names == ("a", "b", "c") and data.has_classes
    assert np.bincount(data.y_train).tolist() == [14, 13, 13]
    np.testing.assert_array_equal(data.y_train, arrays["y_train"])


# --- csv ---------------------------------------------------------------------------------------


def _frame(n=30, features=4, classes=3):
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        rng.integers(0, 256, (n, features)), columns=[f"p{i}" for i in range(features)]
    )
    frame["label"] = np.arange(n) % classes
    return frame


def test_csv_with_label_column_carves_test(tmp_path):
    _frame().to_csv(tmp_path / "d.csv", index=False)
    data = load_csv(tmp_path / "d.csv", test_fraction=0.4, validation_fraction=0.5)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (18, 6, 6)
    assert data.sample_shape == (4,) and data.x_train.max() <= 1.0
    # stratified twice: 12 held-out rows of 3 classes, then 6 of them as validation
    assert np.bincount(data.y_test).tolist() == np.bincount(data.y_val).tolist() == [2, 2, 2]


def test_csv_split_column_decides_the_splits(tmp_path):
    frame = _frame(n=12)
    frame["split"] = ["train"] * 6 + ["validation"] * 2 + ["test"] * 4
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_csv(tmp_path / "d.csv")
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (6, 2, 4)
    np.testing.assert_allclose(data.x_test * 255, frame.iloc[8:, :4].to_numpy(), rtol=1e-5)


def test_csv_test_path(tmp_path):
    _frame(n=20).to_csv(tmp_path / "train.csv", index=False)
    _frame(n=6).to_csv(tmp_path / "test.csv", index=False)
    data = load_csv(tmp_path / "train.csv", test_path=tmp_path / "test.csv")
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (20, 3, 3)


def test_csv_string_labels_become_sorted_class_names(tmp_path):
    frame = _frame(n=20)
    frame["label"] = np.where(np.arange(20) % 2, "zebra", "ant")
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_csv(tmp_path / "d.csv")
    assert data.class_names == ("ant", "zebra")
    assert set(np.concatenate([data.y_train, data.y_test]).tolist()) == {0, 1}


def test_csv_image_shape_reshapes_rows(tmp_path):
    _frame(n=20, features=6).to_csv(tmp_path / "d.csv", index=False)
    assert load_csv(tmp_path / "d.csv", image_shape=(2, 3)).sample_shape == (2, 3)


# --- image folders -----------------------------------------------------------------------------


def test_image_folder_of_classes(tmp_path):
    data = load_image_folder(_image_folder(tmp_path / "imgs"), test_fraction=0.4)
    assert data.class_names == ("cat", "dog") and data.sample_shape == (6, 5)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (6, 2, 2)
    assert sorted(data.y_test.tolist()) == sorted(data.y_val.tolist()) == [0, 1]
    assert data.preprocessing.source.startswith("images:")


def test_image_folder_train_test_layout_and_rgb(tmp_path):
    _image_folder(tmp_path / "train", per_class=4)
    _image_folder(tmp_path / "test", per_class=2)
    data = load_dataset(
        tmp_path, color_mode="rgb", validation_from="train", validation_fraction=0.25
    )
    assert data.sample_shape == (6, 5, 3)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (6, 2, 4)
    # The dog test images were written with red = 40 + i, so their pixels come back scaled.
    np.testing.assert_allclose(data.x_test[data.y_test == 1][:, 0, 0, 0] * 255, [40, 41], rtol=1e-5)


def test_image_folder_resize(tmp_path):
    root = _image_folder(tmp_path, per_class=3)
    _png(root / "cat" / "big.png", size=(12, 10))
    assert load_image_folder(root, image_size=(4, 4)).sample_shape == (4, 4)


def test_image_folder_mixed_sizes_suggest_image_size(tmp_path):
    root = _image_folder(tmp_path, per_class=3)
    _png(root / "dog" / "big.png", size=(12, 10))
    with pytest.raises(InvalidDatasetError, match=r"different sizes.*image_size=\(h, w\)"):
        load_image_folder(root)


def test_unreadable_image_names_the_file(tmp_path):
    root = _image_folder(tmp_path, per_class=3)
    (root / "cat" / "broken.png").write_bytes(b"not an image")
    with pytest.raises(InvalidDatasetError, match=r"Cannot read the image .*broken\.png"):
        load_image_folder(root)


# --- digits ------------------------------------------------------------------------------------


def test_digits():
    data = load_dataset("digits", scale=1 / 255, offset=0.0)  # the step's generic defaults
    assert len(data.y_train) + len(data.y_val) + len(data.y_test) == 1797
    assert data.num_classes == 10 and data.sample_shape == (8, 8)
    assert data.x_train.max() == 1.0 and data.x_train.min() == 0.0
    assert data.preprocessing.source == "digits" and data.preprocessing.scale == 1 / 16
    # 20 % held out (360), half of it validation
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (1437, 180, 180)


# --- conform_to_model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_conform_adds_channel_axis_and_pads_class_names(digits):
    fitted = conform_to_model(digits, input_shape=(None, 8, 1), num_classes=12)
    assert fitted.sample_shape == (8, 8, 1) and fitted.x_test.shape[-1] == 1
    assert fitted.preprocessing.channel_axis_added
    assert fitted.class_names[-2:] == ("10", "11") and fitted.num_classes == 12
    np.testing.assert_array_equal(fitted.x_train[..., 0], digits.x_train)
    with pytest.raises(InvalidDatasetError, match="10 classes but the model has only 8 outputs"):
        conform_to_model(
            replace(
                digits, y_train=digits.y_train % 8, y_val=digits.y_val % 8, y_test=digits.y_test % 8
            ),
            input_shape=(8, 8),
            num_classes=8,
        )


def test_conform_binary_single_output(tmp_path):
    data = load_npz(_npz(tmp_path, **_arrays(classes=2)))
    fitted = conform_to_model(data, input_shape=(4, 4), num_classes=1)
    assert fitted.num_classes == 2 and not fitted.preprocessing.channel_axis_added
    with pytest.raises(InvalidDatasetError, match="single sigmoid"):
        conform_to_model(load_npz(_npz(tmp_path, "b.npz")), input_shape=(4, 4), num_classes=1)


def test_conform_shape_mismatch(digits):
    with pytest.raises(
        InvalidDatasetError,
        match=r"data examples have shape \(8, 8\) but the model expects \(28, 28, 1\)",
    ):
        conform_to_model(digits, input_shape=(28, 28, 1), num_classes=10)


def test_conform_label_out_of_range(digits):
    with pytest.raises(InvalidDatasetError, match=r"Labels \[5, 6, 7, 8, 9\].*num_classes=5"):
        conform_to_model(digits, input_shape=(8, 8), num_classes=5)


# --- bad input ---------------------------------------------------------------------------------


def test_missing_npz_keys(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, images=np.zeros((3, 2)), y_train=np.zeros(3))
    with pytest.raises(InvalidDatasetError, match=r"lacks the keys.*found \['images', 'y_train'\]"):
        load_npz(path)


def test_missing_label_column(tmp_path):
    _frame().rename(columns={"label": "digit"}).to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(
        InvalidDatasetError, match=r"no label column 'label'.*'digit'.*label_column="
    ):
        load_csv(tmp_path / "d.csv")


def test_non_numeric_feature_column(tmp_path):
    frame = _frame()
    frame["colour"] = "red"
    frame.to_csv(tmp_path / "d.csv", index=False)
    with pytest.raises(InvalidDatasetError, match=r"feature columns \['colour'\].*not numeric"):
        load_csv(tmp_path / "d.csv")


def test_nonexistent_path(tmp_path):
    with pytest.raises(InvalidDatasetError, match="no file or folder at"):
        load_dataset(tmp_path / "missing.npz")


def test_unsupported_extension(tmp_path):
    (tmp_path / "d.txt").write_text("1,2,3")
    with pytest.raises(InvalidDatasetError, match=r"Unsupported dataset source.*'digits'.*\.npz"):
        load_dataset(str(tmp_path / "d.txt"))


def test_unknown_loader_option(tmp_path):
    with pytest.raises(InvalidDatasetError, match=r"load_npz does not take \['color_mode'\]"):
        load_dataset(_npz(tmp_path), color_mode="rgb")


def test_empty_split(tmp_path):
    path = _npz(tmp_path, x_test=np.zeros((0, 4, 4), np.uint8), y_test=np.zeros(0, np.int64))
    with pytest.raises(InvalidDatasetError, match="test split is empty: provide test examples"):
        load_npz(path)


def test_nan_and_inf_features(tmp_path):
    x = _arrays()["x_test"].astype(np.float32)
    x[0, 0, 0], x[1, 1, 1], x[2, 2, 2] = np.nan, np.inf, -np.inf
    with pytest.raises(InvalidDatasetError, match="test features contain 3 NaN or infinite"):
        load_npz(_npz(tmp_path, x_train=_arrays()["x_train"].astype(np.float32), x_test=x))


def test_label_out_of_range_for_class_names(tmp_path):
    with pytest.raises(InvalidDatasetError, match=r"labels \[3\] are outside \[0, 3\)"):
        load_npz(_npz(tmp_path), class_names=["a", "b", "c"])
    with pytest.raises(InvalidDatasetError, match="Label -1 is negative"):
        load_npz(_npz(tmp_path, "neg.npz", y_train=np.arange(40) % 4 - 1))


def test_length_mismatch(tmp_path):
    with pytest.raises(InvalidDatasetError, match="train split has 40 examples but 39 labels"):
        load_npz(_npz(tmp_path, y_train=np.arange(39) % 4))


def test_string_feature_dtype(tmp_path):
    x = np.full((40, 2), "ab")
    with pytest.raises(InvalidDatasetError, match=r"train features are strings \(dtype <U2\)"):
        load_npz(_npz(tmp_path, x_train=x, x_test=x[:10]))
    data = load_npz(_npz(tmp_path, "ok.npz"))
    with pytest.raises(InvalidDatasetError, match="validation features are complex numbers"):
        validate_dataset(replace(data, x_val=data.x_val.astype(np.complex64)))


def test_fractional_labels_are_not_classes(tmp_path):
    data = load_npz(_npz(tmp_path, y_train=np.arange(40) % 4 * 1.0, y_test=np.arange(10) % 4 * 1.0))
    assert data.y_train.dtype == np.int64  # whole-number floats are fine
    path = _npz(tmp_path, "b.npz", y_train=np.linspace(0, 3, 40))
    with pytest.raises(
        InvalidDatasetError, match=r"must be whole class indices.*label_kind='values'"
    ):
        load_npz(path, label_kind="classes")
    assert not load_npz(path).has_classes  # auto: fractions make the labels values


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, "a"])
def test_bad_validation_fraction(tmp_path, fraction):
    with pytest.raises(InvalidDatasetError, match=r"validation_fraction=.* is not a fraction"):
        load_npz(_npz(tmp_path), validation_fraction=fraction)


def test_validate_dataset_rejects_mismatched_split_shapes(digits):
    bad = replace(digits, x_test=digits.x_test[:, :4, :4])
    with pytest.raises(InvalidDatasetError, match=r"different example shapes.*test \(4, 4\)"):
        validate_dataset(bad)


# --- labels that are not classes --------------------------------------------------------------


def test_fractional_targets_are_values_of_any_per_example_shape(tmp_path):
    rng = np.random.default_rng(0)
    scalar = load_npz(
        _npz(tmp_path, "r1.npz", y_train=rng.normal(size=40), y_test=rng.normal(size=10))
    )
    assert scalar.y_train.dtype == np.float32 and scalar.y_train.shape == (40,)
    assert (scalar.class_names, scalar.num_classes, scalar.has_classes) == ((), 0, False)
    y_train, y_test = rng.normal(size=(40, 3)), rng.normal(size=(10, 3))
    rows = load_npz(_npz(tmp_path, "r3.npz", y_train=y_train, y_test=y_test))
    assert rows.y_val.shape[1:] == rows.y_test.shape[1:] == (3,)
    np.testing.assert_array_equal(rows.y_train, y_train.astype(np.float32))
    # the held-out targets are the test targets, split in two
    held = np.concatenate([rows.y_val, rows.y_test])
    np.testing.assert_array_equal(np.sort(held, axis=0), np.sort(y_test.astype(np.float32), axis=0))
    validate_dataset(rows)


def test_auto_reads_whole_non_negative_labels_and_one_hot_rows_as_classes(tmp_path):
    counts = np.tile([[2.0, 0.0, 1.0]], (40, 1))  # whole numbers, but not one-hot rows
    assert not load_npz(_npz(tmp_path, "c.npz", y_train=counts, y_test=counts[:10])).has_classes
    negative = (np.arange(40) % 4 - 1.0, np.arange(10) % 4 - 1.0)  # -1.0 is no class index
    data = load_npz(_npz(tmp_path, "n.npz", y_train=negative[0], y_test=negative[1]))
    assert not data.has_classes and data.y_train.min() == -1.0
    whole = load_npz(_npz(tmp_path, "w.npz", y_train=np.arange(40) % 4 * 1.0))
    assert whole.has_classes and whole.class_names == ("0", "1", "2", "3")
    # A whole-number target (a count, an age) is a value when the caller says so.
    as_values = load_npz(_npz(tmp_path, "w.npz"), label_kind="values")
    assert not as_values.has_classes and as_values.y_train.dtype == np.float32
    assert sorted(set(as_values.y_train.tolist())) == [0.0, 1.0, 2.0, 3.0]


def test_values_csv_is_split_without_strata(tmp_path):
    frame = _frame(n=40)
    frame["label"] = np.linspace(-1, 1, 40)
    frame.to_csv(tmp_path / "r.csv", index=False)
    data = load_csv(tmp_path / "r.csv", test_fraction=0.5)
    assert not data.has_classes and (len(data.y_train), len(data.y_val), len(data.y_test)) == (
        20,
        10,
        10,
    )
    labels = np.concatenate([data.y_train, data.y_val, data.y_test])
    np.testing.assert_allclose(np.sort(labels), np.linspace(-1, 1, 40), rtol=1e-6)


def test_bad_values_are_refused_with_the_fix(tmp_path):
    y = np.linspace(0, 1, 40)
    y[3] = np.nan
    with pytest.raises(InvalidDatasetError, match="1 of the train labels are NaN or infinite"):
        load_npz(_npz(tmp_path, "nan.npz", y_train=y))
    odd = _npz(tmp_path, "shape.npz", y_train=np.zeros((40, 2)) + 0.5, y_test=np.zeros(10) + 0.5)
    with pytest.raises(InvalidDatasetError, match=r"different label shapes \(train \(2,\)"):
        load_npz(odd)
    with pytest.raises(InvalidDatasetError, match="class_names were given.*drop class_names"):
        load_npz(
            _npz(tmp_path, "names.npz", class_names=np.array(list("abcd"))), label_kind="values"
        )
    frame = _frame(n=20)
    frame["label"] = np.where(np.arange(20) % 2, "zebra", "ant")
    frame.to_csv(tmp_path / "s.csv", index=False)
    with pytest.raises(InvalidDatasetError, match=r"strings .*not numbers.*label_kind='classes'"):
        load_csv(tmp_path / "s.csv", label_kind="values")
    with pytest.raises(InvalidDatasetError, match=r"image folder, whose labels are classes"):
        load_image_folder(_image_folder(tmp_path / "imgs"), label_kind="values")
    with pytest.raises(InvalidDatasetError, match=r"label_kind='regression' is not a kind"):
        load_dataset("digits", label_kind="regression")


def test_negative_integer_labels_name_both_fixes(tmp_path):
    with pytest.raises(InvalidDatasetError, match=r"Label -1 is negative.*label_kind='values'"):
        load_npz(_npz(tmp_path, y_train=np.arange(40) % 4 - 1))


def test_validate_dataset_accepts_values_and_refuses_integer_labels_without_classes(tmp_path):
    data = load_npz(_npz(tmp_path, y_train=np.linspace(0, 1, 40), y_test=np.linspace(0, 1, 10)))
    validate_dataset(data)
    with pytest.raises(InvalidDatasetError, match="test labels are int64 but the dataset has no"):
        validate_dataset(replace(data, y_test=np.arange(len(data.y_test))))


def test_single_class_train_is_valid_data_but_not_for_a_classifier(tmp_path):
    # An anomaly detector trains on "normal" only and is tested on both kinds.
    data = load_npz(_npz(tmp_path, y_train=np.zeros(40, np.int64), y_test=np.arange(10) % 2))
    assert data.class_names == ("0", "1")
    validate_dataset(data)
    with pytest.raises(InvalidDatasetError, match=r"train split holds a single class \(\[0\]\)"):
        check_classes(data)
    check_classes(load_npz(_npz(tmp_path, "two.npz", **_arrays(classes=2))))
    values = load_npz(_npz(tmp_path, "v.npz", y_train=np.linspace(0, 1, 40)))
    with pytest.raises(InvalidDatasetError, match="labels are values.*label_kind='classes'"):
        check_classes(values)


# --- real MNIST (optional) ---------------------------------------------------------------------


def test_real_mnist():
    if not MNIST.exists():
        pytest.skip(f"{MNIST} is absent")
    data = load_npz(MNIST)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (60000, 5000, 5000)
    assert data.validation_source == (
        "validation: 5,000 examples held out from the test split (50 %, seed 0); test: 5,000"
    )
    assert data.sample_shape == (28, 28) and data.num_classes == 10
    assert data.x_test.min() == 0.0 and data.x_test.max() == 1.0


def test_conform_reshapes_flat_pixel_rows_to_the_model_input(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, size=(40, 4, 4), dtype=np.uint8)
    frame = pd.DataFrame(images.reshape(40, 16), columns=[f"p{i}" for i in range(16)])
    frame["label"] = np.arange(40) % 3
    path = tmp_path / "pixels.csv"
    frame.to_csv(path, index=False)
    data = load_csv(path, test_fraction=0.5)
    assert data.sample_shape == (16,)
    fitted = conform_to_model(data, input_shape=(4, 4, 1), num_classes=3)
    assert fitted.sample_shape == (4, 4, 1)
    # Row-major: a row's first four pixels are the image's first row.
    row = data.x_test[0]
    np.testing.assert_array_equal(fitted.x_test[0][0, :, 0], row[:4])
    with pytest.raises(InvalidDatasetError, match="expects"):
        conform_to_model(data, input_shape=(5, 5, 1), num_classes=3)

"""Honest splits: validation is given, or held out from test (never shared with it), and said so.

Every example here is recognisable (its features encode its index), so "validation and test
share no example" is checked row by row, not by sizes alone.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn import datasets as sk_datasets

from zenml_quant.datasets import load_csv, load_dataset, load_digits, load_image_folder, load_npz
from zenml_quant.errors import InvalidDatasetError


def _ids(n: int, start: int = 0) -> np.ndarray:
    """``n`` distinct uint8 rows (a 2-digit base-256 index), so each example can be found."""
    i = np.arange(start, start + n)
    return np.stack([i // 256, i % 256], axis=1).astype(np.uint8)


def _rows(x: np.ndarray) -> set[tuple[float, ...]]:
    return {tuple(row) for row in np.asarray(x).reshape(len(x), -1).tolist()}


def _index(x: np.ndarray) -> list[int]:
    """The index each loaded (``/ 255``-scaled) example of :func:`_ids` encodes."""
    return (np.rint(np.asarray(x) * 255).astype(int) @ [256, 1]).tolist()


def _set(x: np.ndarray) -> set[int]:
    return set(_index(x))


def _npz(path: Path, n_train: int = 60, n_test: int = 40, classes: int = 4, **extra) -> Path:
    arrays = {
        "x_train": _ids(n_train),
        "y_train": np.arange(n_train) % classes,
        "x_test": _ids(n_test, start=1000),
        "y_test": np.arange(n_test) % classes,
    }
    np.savez(path, **{**arrays, **extra})
    return path


def _assert_disjoint(data, *, test_ids: range | None = None) -> None:
    """No example is in two splits; with ``test_ids``, validation and test partition them."""
    train, val, test = _set(data.x_train), _set(data.x_val), _set(data.x_test)
    assert len(val) == len(data.x_val) and len(test) == len(data.x_test)  # no repeats either
    assert not val & test and not val & train and not test & train
    if test_ids is not None:
        assert val | test == set(test_ids)


# --- held out from test (the default) ------------------------------------------------------------


def test_validation_is_held_out_from_test_stratified_and_train_is_whole(tmp_path):
    data = load_npz(_npz(tmp_path / "d.npz"))
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (60, 20, 20)
    assert _index(data.x_train) == list(range(60))  # whole and in order
    _assert_disjoint(data, test_ids=range(1000, 1040))
    assert np.bincount(data.y_val).tolist() == np.bincount(data.y_test).tolist() == [5] * 4
    assert data.validation_source == (
        "validation: 20 examples held out from the test split (50 %, seed 0); test: 20"
    )


@pytest.mark.parametrize(
    ("n_test", "fraction", "seed", "classes"),
    [(40, None, 0, 4), (41, 0.3, 1, 4), (7, 0.5, 2, 3), (10, 0.9, 3, 2), (25, 0.2, 4, 0)],
)
def test_validation_and_test_never_share_an_example(tmp_path, n_test, fraction, seed, classes):
    extra = {}
    if classes == 0:  # values: no strata
        extra = {"y_train": np.linspace(0, 1, 60), "y_test": np.linspace(0, 1, n_test)}
    path = _npz(tmp_path / "d.npz", n_test=n_test, classes=max(classes, 1), **extra)
    data = load_npz(path, validation_fraction=fraction, seed=seed)
    expected_val = int(np.ceil((fraction or 0.5) * n_test))
    assert (len(data.y_val), len(data.y_test)) == (expected_val, n_test - expected_val)
    _assert_disjoint(data, test_ids=range(1000, 1000 + n_test))
    # each held-out example keeps its own label (ids 1000 + i have label i % classes)
    ids = np.array(_index(data.x_val))
    expected = (ids - 1000) % classes if classes else np.linspace(0, 1, n_test)[ids - 1000]
    np.testing.assert_allclose(data.y_val, expected, rtol=1e-6)


def test_held_out_validation_is_seeded(tmp_path):
    path = _npz(tmp_path / "d.npz")
    a, b, c = load_npz(path, seed=1), load_npz(path, seed=1), load_npz(path, seed=2)
    np.testing.assert_array_equal(a.x_val, b.x_val)
    assert _set(a.x_val) != _set(c.x_val)
    assert a.validation_source.endswith("(50 %, seed 1); test: 20")


def test_too_small_a_test_split_says_how_to_get_validation(tmp_path):
    path = _npz(tmp_path / "d.npz", n_test=1, classes=1)
    with pytest.raises(
        InvalidDatasetError, match=r"test split has only 1 example, too few.*val_data"
    ):
        load_npz(path)
    data = load_npz(path, validation_from="train")  # the escape hatch works
    assert (len(data.y_val), len(data.y_test)) == (6, 1)


# --- carved from train (opt-in, the old behaviour) ----------------------------------------------


def test_validation_from_train_keeps_test_whole_and_warns(tmp_path):
    data = load_npz(_npz(tmp_path / "d.npz"), validation_from="train")
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (54, 6, 40)
    _assert_disjoint(data)
    assert _set(data.x_train) | _set(data.x_val) == set(range(60))
    assert data.validation_source == (
        "validation: 10 % of the train split (6, seed 0) — the model may have been trained "
        "on it; test: 40"
    )
    custom = load_npz(_npz(tmp_path / "d.npz"), validation_from="train", validation_fraction=0.25)
    assert (len(custom.y_train), len(custom.y_val)) == (45, 15)


@pytest.mark.parametrize("value", ["foo", "Test", None, 1])
def test_bad_validation_from(tmp_path, value):
    with pytest.raises(InvalidDatasetError, match=r"validation_from=.* is not a split.*'test'"):
        load_dataset(_npz(tmp_path / "d.npz"), validation_from=value)


# --- given validation data ----------------------------------------------------------------------


def test_val_data_file_is_used_as_is_and_scaled_like_the_main_data(tmp_path):
    main = _npz(tmp_path / "d.npz")
    np.savez(tmp_path / "v.npz", x_val=_ids(8, start=5000), y_val=np.arange(8) % 4)
    data = load_dataset(main, val_data=tmp_path / "v.npz", scale=2 / 255, offset=-1.0)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (60, 8, 40)
    np.testing.assert_allclose(
        data.x_val, _ids(8, start=5000).astype(float) * 2 / 255 - 1, atol=1e-6
    )
    np.testing.assert_array_equal(data.y_val, np.arange(8) % 4)
    assert data.validation_source == "validation: x_val from v.npz (8); test: x_test (40)"
    np.savez(tmp_path / "xy.npz", x=_ids(3, start=6000), y=[0, 1, 2])
    plain = load_dataset(main, val_data=str(tmp_path / "xy.npz"))
    assert plain.validation_source == "validation: x from xy.npz (3); test: x_test (40)"


def test_val_data_for_csv_images_and_digits(tmp_path):
    frame = pd.DataFrame(_ids(30), columns=["a", "b"]).assign(label=np.arange(30) % 3)
    frame.to_csv(tmp_path / "d.csv", index=False)
    np.savez(tmp_path / "v.npz", x_val=_ids(4, start=900), y_val=[0, 1, 2, 0])
    data = load_dataset(tmp_path / "d.csv", val_data=tmp_path / "v.npz", test_fraction=0.2)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (24, 4, 6)
    assert data.validation_source == (
        "validation: x_val from v.npz (4); test: 20 % of d.csv with seed 0 (6)"
    )
    np.savez(tmp_path / "dv.npz", x_val=np.full((5, 8, 8), 16, np.uint8), y_val=np.arange(5))
    digits = load_dataset("digits", val_data=tmp_path / "dv.npz", scale=1 / 255)
    assert digits.x_val.max() == 1.0 and len(digits.y_test) == 360  # 0..16 scaled by 1/16
    assert digits.validation_source == (
        "validation: x_val from dv.npz (5); test: 20 % of the digits with seed 0 (360)"
    )


def test_val_data_mistakes_are_named(tmp_path):
    main = _npz(tmp_path / "d.npz")
    np.savez(tmp_path / "keys.npz", features=_ids(3), labels=[0, 1, 2])
    with pytest.raises(InvalidDatasetError, match=r"neither x_val and y_val nor x and y.*features"):
        load_dataset(main, val_data=tmp_path / "keys.npz")
    np.savez(tmp_path / "shape.npz", x_val=np.zeros((3, 5), np.uint8), y_val=[0, 1, 2])
    with pytest.raises(
        InvalidDatasetError,
        match=r"validation examples \(x_val from shape\.npz\) have shape \(5,\).*have \(2,\)",
    ):
        load_dataset(main, val_data=tmp_path / "shape.npz")
    with pytest.raises(InvalidDatasetError, match=r"val_data=.*missing\.npz' is not an \.npz file"):
        load_dataset(main, val_data=tmp_path / "missing.npz")
    np.savez(tmp_path / "floats.npz", x_val=np.zeros((3, 2), np.float32), y_val=[0, 1, 2])
    with pytest.raises(InvalidDatasetError, match=r"integer features and others floats"):
        load_dataset(main, val_data=tmp_path / "floats.npz")
    own = _npz(tmp_path / "own.npz", x_val=_ids(4, start=700), y_val=np.arange(4))
    np.savez(tmp_path / "v.npz", x_val=_ids(3), y_val=[0, 1, 2])
    with pytest.raises(InvalidDatasetError, match=r"Two validation sets.*x_val from own\.npz"):
        load_dataset(own, val_data=tmp_path / "v.npz")


def test_csv_validation_rows_are_used_as_is(tmp_path):
    frame = pd.DataFrame(_ids(12), columns=["a", "b"]).assign(label=np.arange(12) % 2)
    frame["split"] = ["train"] * 6 + ["val"] * 2 + ["test"] * 4
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_csv(tmp_path / "d.csv", validation_from="train")  # ignored: validation is given
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (6, 2, 4)
    assert _index(data.x_val) == [6, 7]
    assert data.validation_source == (
        "validation: split=validation rows of d.csv (2); test: split=test rows (4)"
    )
    frame["split"] = ["train"] * 8 + ["test"] * 4  # no validation rows: half of test is held out
    frame.to_csv(tmp_path / "d.csv", index=False)
    held = load_csv(tmp_path / "d.csv")
    assert (len(held.y_train), len(held.y_val), len(held.y_test)) == (8, 2, 2)
    _assert_disjoint(held, test_ids=range(8, 12))


def test_csv_without_split_column_carves_test_then_validation_from_it(tmp_path):
    frame = pd.DataFrame(_ids(50), columns=["a", "b"]).assign(label=np.arange(50) % 5)
    frame.to_csv(tmp_path / "d.csv", index=False)
    data = load_csv(tmp_path / "d.csv", test_fraction=0.4)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (30, 10, 10)
    _assert_disjoint(data)
    assert _set(data.x_train) | _set(data.x_val) | _set(data.x_test) == set(range(50))
    assert np.bincount(data.y_val).tolist() == [2] * 5


def _png(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (3, 2), value).save(path)


@pytest.mark.parametrize("val_folder", ["validation", "val"])
def test_image_folder_validation_folder_is_used(tmp_path, val_folder):
    for split, n in (("train", 4), (val_folder, 2), ("test", 3)):
        for c in ("cat", "dog"):
            for i in range(n):
                _png(tmp_path / split / c / f"{i}.png", value=10 * i + (c == "dog"))
    data = load_image_folder(tmp_path)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (8, 4, 6)
    assert data.validation_source == (
        f"validation: the {val_folder}/ folder (4); test: the test/ folder (6)"
    )


def test_image_folder_without_validation_holds_it_out_of_test(tmp_path):
    for split, n in (("train", 4), ("test", 4)):
        for c in ("cat", "dog"):
            for i in range(n):  # test images are brighter than any train image
                _png(tmp_path / split / c / f"{i}.png", value=(100 if split == "test" else 0) + i)
    data = load_image_folder(tmp_path)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (8, 4, 4)
    assert data.x_val.min() * 255 >= 99.5 and data.x_train.max() * 255 <= 3.5
    assert sorted(data.y_val.tolist()) == sorted(data.y_test.tolist()) == [0, 0, 1, 1]
    assert data.validation_source.startswith("validation: 4 examples held out from the test split")


def test_image_folder_with_both_validation_folders_is_refused(tmp_path):
    for split in ("train", "validation", "val", "test"):
        _png(tmp_path / split / "cat" / "0.png", 0)
        _png(tmp_path / split / "dog" / "0.png", 1)
    with pytest.raises(InvalidDatasetError, match="both a validation/ and a val/ folder"):
        load_image_folder(tmp_path)


# --- the bundled digits ---------------------------------------------------------------------------


def test_digits_validation_comes_from_the_held_out_test_images():
    images = sk_datasets.load_digits().images.astype(np.float32) / 16
    everything = _rows(images)
    assert len(everything) == 1797  # every digit image is distinct, so rows identify examples
    data = load_digits()
    train, val, test = _rows(data.x_train), _rows(data.x_val), _rows(data.x_test)
    assert not val & test and not val & train and not test & train
    assert train | val | test == everything
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (1437, 180, 180)
    assert np.bincount(data.y_val).min() >= 17  # stratified: ~18 of each digit
    assert data.validation_source == (
        "validation: 180 examples held out from the test split (50 %, seed 0); test: 180"
    )
    old = load_digits(validation_from="train")
    assert (len(old.y_train), len(old.y_val), len(old.y_test)) == (1293, 144, 360)
    np.testing.assert_array_equal(np.sort(old.y_test), np.sort(np.r_[data.y_val, data.y_test]))

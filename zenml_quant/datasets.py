"""Labeled data from ``.npz``, ``.csv``, image folders or the bundled digits.

Every loader returns a validated :class:`LabeledDataset`: float32 features; labels that are
either int64 class indices or float32 values (e.g. regression targets); and the
:class:`Preprocessing` that was applied, so the device can apply it too.

Validation drives every decision (accuracy budget, sensitivity, search, gate) and test gives
the reported figures, so validation must be data the model never saw. It is the validation data
the user gave (``x_val``/``y_val``, ``split=validation`` rows, a ``validation/`` folder,
``val_data=``) or else a seeded part of the held-out test split (stratified for classes); only
when asked (``validation_from="train"``) is it carved from train, which the model may have been
trained on. Validation and test never share an example, and
:attr:`LabeledDataset.validation_source` says where validation came from.

Bad input raises :class:`InvalidDatasetError` saying what to change.
"""

from __future__ import annotations

import inspect
import math
import os
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from . import inputs as _inputs
from .errors import InvalidDatasetError
from .types import SPLITS, LabeledDataset, Preprocessing

__all__ = [
    "IMAGE_EXTENSIONS",
    "LABEL_KINDS",
    "NPZ_KEYS",
    "VALIDATION_FROM",
    "LabelKind",
    "ValidationFrom",
    "check_classes",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_npz",
    "validate_dataset",
]

#: Where validation comes from when none is given: part of the held-out test split (the
#: default, data the model never saw) or part of train (the model may have been trained on it).
ValidationFrom = Literal["test", "train"]
VALIDATION_FROM: tuple[str, ...] = ("test", "train")
#: What the labels are: class indices, values (e.g. regression targets), or decided from them.
LabelKind = Literal["auto", "classes", "values"]
LABEL_KINDS: tuple[str, ...] = ("auto", "classes", "values")
#: ``validation_fraction=None`` means half the test split, or a tenth of train.
_DEFAULT_FRACTION = {"test": 0.5, "train": 0.1}

#: The arrays a ``.npz`` must hold (Keras' ``mnist.npz`` layout).
NPZ_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
_NPZ_VAL_KEYS = ("x_val", "y_val")
#: The key pairs a ``val_data`` file may hold, in order of preference.
_VAL_DATA_KEYS = (("x_val", "y_val"), ("x", "y"))
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
_SUPPORTED = "'digits', a .npz file, a .csv file, or a folder of class subfolders of images"
_GIVE_VALIDATION = (
    "give validation data (x_val and y_val in the .npz, split=validation rows in the CSV, "
    "a validation/ folder, or val_data=an .npz)"
)
_SPLIT_FIX = {
    "train": "provide more training examples, or lower test_fraction",
    "validation": f"{_GIVE_VALIDATION}, or provide more test examples",
    "test": "provide test examples (x_test, split=test rows, a test/ folder) "
    "or raise test_fraction",
}
_KINDS = {
    "b": "booleans",
    "c": "complex numbers",
    "O": "Python objects",
    "U": "strings",
    "S": "bytes",
}
XY = tuple[np.ndarray, np.ndarray]


def _fail(message: str) -> InvalidDatasetError:
    return InvalidDatasetError(message)


def _count(n: int, noun: str = "example") -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def _percent(fraction: float) -> str:
    return f"{fraction * 100:.4g} %"


def _check_fraction(name: str, value: float) -> None:
    try:
        ok = not isinstance(value, bool) and 0.0 < float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _fail(
            f"{name}={value!r} is not a fraction: pass a number strictly between 0 and 1, "
            f"e.g. {name}=0.1."
        )


@dataclass(frozen=True)
class _HoldOut:
    """How to make validation when none is given: ``fraction`` of split ``source``."""

    source: str
    fraction: float
    seed: int


def _hold_out_options(
    validation_from: object, validation_fraction: float | None, seed: int
) -> _HoldOut:
    if not isinstance(validation_from, str) or validation_from not in VALIDATION_FROM:
        raise _fail(
            f"validation_from={validation_from!r} is not a split validation can come from: "
            "pass 'test' (hold out part of the test split, the default) or 'train' (only if "
            "the model never saw its train split)."
        )
    fraction = (
        _DEFAULT_FRACTION[validation_from] if validation_fraction is None else validation_fraction
    )
    _check_fraction("validation_fraction", fraction)
    return _HoldOut(validation_from, float(fraction), seed)


def _check_label_kind(label_kind: object) -> None:
    if not isinstance(label_kind, str) or label_kind not in LABEL_KINDS:
        raise _fail(
            f"label_kind={label_kind!r} is not a kind of label: pass 'classes' (class "
            "indices or names), 'values' (numeric targets, e.g. regression) or 'auto' "
            "(classes when every label is a whole non-negative number or a string)."
        )


def _bad_dtype(dtype: np.dtype, where: str) -> InvalidDatasetError:
    return _fail(
        f"The {where} are {_KINDS.get(dtype.kind, str(dtype))} (dtype {dtype}), not "
        "numbers: store them as integer pixels or floats (e.g. x.astype('uint8'))."
    )


def _preprocess(
    x: np.ndarray, scale: float, offset: float, *, where: str = "features"
) -> tuple[np.ndarray, bool]:
    """Integer features become ``float32(x) * scale + offset``; float features are only cast.

    For several inputs each is treated on its own (integer pixels scaled, float features kept)
    and the flag says whether any was scaled.
    """
    x = np.asarray(x)
    if _inputs.is_multi(x):
        scaled = []

        def each(name: str, part: np.ndarray) -> np.ndarray:
            out, applied = _preprocess(part, scale, offset, where=f"{where} ({name})")
            scaled.append(applied)
            return out

        return _inputs.map_parts(x, each), any(scaled)
    if x.dtype.kind in "iu":
        return x.astype(np.float32) * np.float32(scale) + np.float32(offset), True
    if x.dtype.kind == "f":
        return x.astype(np.float32, copy=False), False
    raise _bad_dtype(x.dtype, where)


def _carve(
    x: np.ndarray, y: np.ndarray, fraction: float, seed: int, *, stratify: bool
) -> tuple[np.ndarray, ...]:
    """Split ``fraction`` off ``(x, y)``: returns ``x_keep, y_keep, x_out, y_out``.

    The two parts are disjoint by index. ``stratify`` keeps class proportions (class labels
    only; values have no strata).
    """
    n = len(y)
    # Rounded first: 0.1 * 30 is 3.0000000000000004, whose ceiling would take 4.
    n_out = math.ceil(round(fraction * n, 9))
    if n_out >= n:  # too few to split; the caller reports the empty part
        return x, y, x[:0], y[:0]
    strata = None
    if stratify:
        counts = np.unique(y, return_counts=True)[1]
        # Stratifying needs two examples of every class and room for one of each on both sides.
        if counts.min() >= 2 and min(n_out, n - n_out) >= len(counts):
            strata = y
    x_keep, x_out, y_keep, y_out = train_test_split(
        x, y, test_size=n_out, random_state=seed, stratify=strata
    )
    return x_keep, y_keep, x_out, y_out


def _check_lengths(split: str, x: np.ndarray, y: np.ndarray) -> None:
    if np.ndim(x) == 0 or np.ndim(y) == 0 or len(x) != len(y):
        nx, ny = (len(a) if np.ndim(a) else "no" for a in (x, y))
        raise _fail(
            f"The {split} split has {nx} examples but {ny} labels: features and labels "
            "must be arrays of the same length, one entry per example."
        )


_VALUES_FIX = "or pass label_kind='values' if they are numeric targets (e.g. regression)"


def _integral_labels(y: np.ndarray, where: str = "labels") -> np.ndarray:
    if y.ndim != 1:
        raise _fail(
            f"The {where} have shape {y.shape}: pass one class index per example (N,) "
            f"or one-hot rows (N, classes), {_VALUES_FIX}."
        )
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise _fail(
                f"{np.count_nonzero(~np.isfinite(y))} of the {where} are NaN or "
                "infinite: every example needs a class index; drop unlabeled examples."
            )
        if (fractional := y[y != np.round(y)]).size:
            raise _fail(
                f"The {where} must be whole class indices but include "
                f"{np.unique(fractional)[:5]}: use integers 0, 1, ... or class names, "
                f"{_VALUES_FIX}."
            )
    elif y.dtype.kind not in "biu":
        raise _fail(f"The {where} have dtype {y.dtype}: use integer class indices or names.")
    return y.astype(np.int64)


def _looks_like_classes(y: np.ndarray) -> bool:
    """Whether ``label_kind="auto"`` reads these labels as classes (see :func:`load_npz`)."""
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind in "USO":
        return True
    if y.ndim == 2:  # one-hot rows name a class; any other row is k values per example
        return y.dtype.kind in "biuf" and bool(
            np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()
        )
    if y.ndim != 1:
        return False
    if y.dtype.kind == "f":
        return bool((np.isfinite(y) & (y == np.round(y)) & (y >= 0)).all())
    # Integer storage means class indices (negative ones are reported as such); other dtypes
    # take the class path too, which names what is wrong with them.
    return True


def _encode_classes(
    ys: Sequence[np.ndarray], class_names: Sequence[str] | None
) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """int64 labels of every split (encoded together, so indices agree) and the class names."""
    flat = []
    for y in ys:
        if y.ndim == 2 and y.shape[1] > 1 and y.dtype.kind in "biuf":
            y = y.argmax(axis=1)  # one-hot (or probability) rows: the class is the top column
        flat.append(y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y)
    names = None if class_names is None else tuple(map(str, class_names))
    if any(y.dtype.kind in "USO" for y in flat):
        as_str = [y.astype(str).tolist() for y in flat]
        seen = {v for y in as_str for v in y}
        names = names or tuple(sorted(seen))
        if unknown := sorted(seen - set(names)):
            raise _fail(
                f"Labels {unknown[:5]} are not in class_names {list(names)}: add them "
                "to class_names or fix the labels."
            )
        index = {name: i for i, name in enumerate(names)}
        return [np.array([index[v] for v in y], dtype=np.int64) for y in as_str], names
    ints = [_integral_labels(y) for y in flat]
    if (low := min((int(y.min()) for y in ints if len(y)), default=0)) < 0:
        raise _fail(
            f"Label {low} is negative: class indices are 0, 1, ...; shift the labels, "
            f"{_VALUES_FIX}."
        )
    top = max((int(y.max()) for y in ints if len(y)), default=-1)
    return ints, names or tuple(str(i) for i in range(top + 1))


def _check_values(y: np.ndarray, where: str) -> np.ndarray:
    """``y`` as finite float32 values of any per-example shape, or a clear error."""
    if y.dtype.kind not in "biuf":
        # A CSV's text column comes as objects; call strings strings.
        text = y.dtype.kind == "O" and all(isinstance(v, str) for v in y.ravel()[:100])
        kind = "strings" if text else _KINDS.get(y.dtype.kind, str(y.dtype))
        raise _fail(
            f"The {where} are {kind} (dtype {y.dtype}), "
            "not numbers: values (label_kind='values') must be numeric; for class names "
            "pass label_kind='classes'."
        )
    values = y.astype(np.float32)
    if bad := np.count_nonzero(~np.isfinite(values)):
        raise _fail(
            f"{bad} of the {where} are NaN or infinite (or too large for float32): every "
            "example needs a finite target; drop those examples or fill them in."
        )
    return values


def _encode_labels(
    ys: Mapping[str, np.ndarray], class_names: Sequence[str] | None, label_kind: str
) -> tuple[dict[str, np.ndarray], tuple[str, ...]]:
    """The labels of every split as classes (int64, with names) or values (float32, no names).

    ``label_kind="auto"`` picks classes when class names are given, or when every label of
    every split is a string, a whole non-negative number (integer dtypes always count) or a
    one-hot row; anything else (fractions, negative floats, other rows) is values.
    """
    if label_kind == "auto":
        classes = class_names is not None or all(map(_looks_like_classes, ys.values()))
        label_kind = "classes" if classes else "values"
    if label_kind == "classes":
        encoded, names = _encode_classes(list(ys.values()), class_names)
        return dict(zip(ys, encoded, strict=True)), names
    if class_names is not None:
        raise _fail(
            "class_names were given (or the .npz holds a class_names key) but the labels "
            "are values: drop class_names, or pass label_kind='classes' if they are classes."
        )
    return {split: _check_values(y, f"{split} labels") for split, y in ys.items()}, ()


def _check_finite(split: str, x: np.ndarray) -> None:
    if _inputs.is_multi(x):
        for name, part in _inputs.parts(x).items():
            _check_finite(f"{split} ({name})", part)
        return
    if not np.isfinite(x).all():
        raise _fail(
            f"The {split} features contain {np.count_nonzero(~np.isfinite(x))} NaN "
            "or infinite values: fill them in or drop those examples."
        )


def _check_given_shape(x_val: np.ndarray, x_train: np.ndarray, origin: str) -> None:
    got, want = _inputs.example_shape(x_val), _inputs.example_shape(x_train)
    if got != want:
        raise _fail(
            f"The validation examples ({origin}) have shape {got} but the train examples "
            f"have {want}: give validation data of the same example shape as the main data "
            "(resize or reshape it)."
        )


def _hold_out(
    arrays: dict[str, XY], options: _HoldOut, *, stratify: bool
) -> tuple[dict[str, XY], str]:
    """Carve validation off ``options.source``; the arrays and the sentence saying so."""
    origin = options.source
    x, y = arrays[origin]
    if len(y) == 0:
        raise _fail(f"The {origin} split is empty: {_SPLIT_FIX[origin]}.")
    x_keep, y_keep, x_val, y_val = _carve(x, y, options.fraction, options.seed, stratify=stratify)
    if len(y_val) == 0:
        raise _fail(
            f"The {origin} split has only {_count(len(y))}, too few to hold out "
            f"validation_fraction={options.fraction:g} of it and keep the rest: provide more "
            f"{origin} examples, lower validation_fraction, or {_GIVE_VALIDATION}."
        )
    arrays = {**arrays, origin: (x_keep, y_keep), "validation": (x_val, y_val)}
    n_test, how = len(arrays["test"][1]), f"{_percent(options.fraction)}, seed {options.seed}"
    if origin == "test":
        sentence = (
            f"validation: {_count(len(y_val))} held out from the test split ({how}); "
            f"test: {n_test:,}"
        )
    else:
        sentence = (
            f"validation: {_percent(options.fraction)} of the train split ({len(y_val):,}, "
            f"seed {options.seed}) — the model may have been trained on it; test: {n_test:,}"
        )
    return arrays, sentence


def _build(
    train: XY,
    test: XY,
    *,
    val: XY | None,
    val_origin: str,
    test_origin: str,
    hold_out: _HoldOut,
    scale: float,
    offset: float,
    class_names: Sequence[str] | None,
    label_kind: str,
    source: str,
) -> LabeledDataset:
    """Encode labels, take the given validation or hold it out, scale features, validate.

    ``test_origin`` names where the test split came from, for the sentence of a given
    validation.
    """
    parts = {"train": train, "test": test, **({"validation": val} if val is not None else {})}
    raw = {split: (np.asarray(x), np.asarray(y)) for split, (x, y) in parts.items()}
    for split, (x, y) in raw.items():
        _check_lengths(split, x, y)
    ys, names = _encode_labels({s: y for s, (_, y) in raw.items()}, class_names, label_kind)
    # Features are checked before validation is held out, so errors name the split as given.
    xs = {s: _preprocess(x, scale, offset, where=f"{s} features") for s, (x, _) in raw.items()}
    if len({applied for _, applied in xs.values()}) > 1:
        raise _fail(
            "Some splits hold integer features and others floats, so they cannot be "
            "scaled alike: store every split (and val_data) with the same dtype."
        )
    for split, (x, _) in xs.items():
        _check_finite(split, x)
    applied = xs["train"][1]
    arrays = {split: (x, ys[split]) for split, (x, _) in xs.items()}
    if val is None:
        arrays, sentence = _hold_out(arrays, hold_out, stratify=bool(names))
    else:
        _check_given_shape(arrays["validation"][0], arrays["train"][0], val_origin)
        n_val, n_test = len(arrays["validation"][1]), len(arrays["test"][1])
        sentence = f"validation: {val_origin} ({n_val:,}); test: {test_origin} ({n_test:,})"
    dataset = LabeledDataset(
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_val=arrays["validation"][0],
        y_val=arrays["validation"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
        class_names=names,
        # Float input was left alone: record the identity so the device does not rescale it.
        preprocessing=Preprocessing(
            scale=float(scale) if applied else 1.0,
            offset=float(offset) if applied else 0.0,
            applied=applied,
            channel_axis_added=False,
            source=source,
        ),
        validation_source=sentence,
    )
    validate_dataset(dataset)
    return dataset


def validate_dataset(dataset: LabeledDataset) -> None:
    """Raise :class:`InvalidDatasetError` unless every split is usable for training and scoring.

    No split may be empty; features and labels have equal lengths; features are finite float32
    with one per-example shape in all splits. With class names, labels are whole numbers in
    ``[0, num_classes)``; without, they are finite float values of one per-example shape in all
    splits. Whether a classifier's train split holds several classes is :func:`check_classes`.
    """
    shapes, label_shapes = {}, {}
    for split in SPLITS:
        x, y = (np.asarray(a) for a in dataset.split(split))
        _check_lengths(split, x, y)
        if len(y) == 0:
            raise _fail(f"The {split} split is empty: {_SPLIT_FIX[split]}.")
        for name, part in (_inputs.parts(x) if _inputs.is_multi(x) else {"": x}).items():
            where = f"{split} features" + (f" ({name})" if name else "")
            if part.dtype.kind not in "iuf":
                raise _bad_dtype(part.dtype, where)
            if part.dtype != np.float32:
                raise _fail(
                    f"The {where} are {part.dtype}, not float32: load them with a "
                    "zenml_quant.datasets loader (it scales integer pixels) or cast them."
                )
        _check_finite(split, x)
        if dataset.has_classes:
            labels, n = _integral_labels(y, f"{split} labels"), dataset.num_classes
            if (outside := np.unique(labels[(labels < 0) | (labels >= n)])).size:
                raise _fail(
                    f"The {split} labels {outside[:10].tolist()} are outside [0, {n}) for {n} "
                    "class names: pass class_names covering every label, or fix the labels."
                )
        elif y.dtype.kind != "f":
            raise _fail(
                f"The {split} labels are {y.dtype} but the dataset has no class_names, which "
                "makes its labels values: for classes set class_names (the loaders do with "
                "label_kind='classes'); for values cast the labels to float32."
            )
        else:
            _check_values(y, f"{split} labels")
        shapes[split], label_shapes[split] = _inputs.example_shape(x), y.shape[1:]
    for what, seen in (("example", shapes), ("label", label_shapes)):
        if len(set(seen.values())) > 1:
            listed = ", ".join(f"{split} {shape}" for split, shape in seen.items())
            raise _fail(
                f"The splits have different {what} shapes ({listed}): every {what} must "
                "have the same shape; resize or reshape the odd split."
            )


def check_classes(dataset: LabeledDataset) -> None:
    """Raise :class:`InvalidDatasetError` unless the labels are classes and train holds two or more.

    For callers that train or score a classifier: it cannot be calibrated, fine-tuned or scored
    meaningfully on one class. The loaders do not call it, because other tasks are fine with one
    (an anomaly-detection autoencoder's train split is all "normal").
    """
    if not dataset.has_classes:
        raise _fail(
            "The labels are values (no class_names), not classes: a classifier needs class "
            "indices; load the data with label_kind='classes' if the labels are classes."
        )
    seen = np.unique(_integral_labels(np.asarray(dataset.y_train), "train labels"))
    if seen.size < 2:
        raise _fail(
            f"The train split holds a single class ({seen.tolist()}): a classifier cannot be "
            "calibrated, fine-tuned or scored meaningfully on it; include examples of every class."
        )


def _read_npz(path: Path, keys: Callable[[list[str]], Sequence[str]]) -> dict[str, np.ndarray]:
    """The arrays ``keys(files)`` names in the ``.npz`` at ``path`` (``keys`` may raise)."""
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):
            raise _fail(
                f"{path} holds a single array, not an archive: save it with "
                "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
            )
        with archive:
            return {k: archive[k] for k in keys(list(archive.files))}
    except InvalidDatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise _fail(
            f"Could not read {path} as a .npz archive ({err}): save it with np.savez "
            "and plain numeric arrays (object arrays need pickle, which is refused)."
        ) from err


def _read_val_data(val_data: str | os.PathLike[str], names: tuple[str, ...] = ()) -> tuple[XY, str]:
    """The validation ``(x, y)`` of a ``val_data`` file and the phrase naming them (for several
    inputs ``names``, the keys are ``x_val_<input>`` or ``x_<input>``, with ``y_val`` or ``y``)."""
    path = Path(val_data).expanduser()
    if not path.is_file() or path.suffix.lower() != ".npz":
        raise _fail(
            f"val_data={str(val_data)!r} is not an .npz file: save the validation examples "
            "with np.savez(path, x_val=..., y_val=...) and pass that path."
        )

    def keys(files: list[str]) -> Sequence[str]:
        for x_key, y_key in _VAL_DATA_KEYS:
            wanted = [*(f"{x_key}_{n}" for n in names), y_key] if names else [x_key, y_key]
            if set(wanted) <= set(files):
                return wanted
        lacks = (
            f"lacks x_val_<input> and y_val (or x_<input> and y) for the inputs {', '.join(names)}"
            if names
            else "holds neither x_val and y_val nor x and y"
        )
        raise _fail(
            f"val_data {path} {lacks} (found {sorted(files)}): re-save it with "
            "np.savez(path, x_val=..., y_val=...)."
        )

    arrays = _read_npz(path, keys)
    *x_keys, y_key = list(arrays)  # in the order keys() gave: features, then labels
    x_key = x_keys[0].removesuffix(f"_{names[0]}") if names else x_keys[0]
    x = _x_of({f"x_val{k.removeprefix(x_key)}": arrays[k] for k in x_keys}, "val", names, path)
    return (x, arrays[y_key]), f"{x_key} from {path.name}"


def _validation(
    own: tuple[XY, str] | None,
    val_data: str | os.PathLike[str] | None,
    names: tuple[str, ...] = (),
) -> tuple[XY | None, str]:
    """The given validation split and its description: the data's own, or ``val_data``."""
    if val_data is None:
        return (None, "") if own is None else own
    if own is not None:
        raise _fail(
            f"Two validation sets were given, {own[1]} and val_data={str(val_data)!r}: "
            "drop one of them."
        )
    return _read_val_data(val_data, names)


def _npz_input_names(files: Sequence[str]) -> tuple[str, ...]:
    """The inputs of a several-input archive (keys ``x_train_<input>``), or ``()``."""
    if "x_train" in files:
        return ()
    return tuple(sorted(k.removeprefix("x_train_") for k in files if k.startswith("x_train_")))


def _x_keys(split: str, names: tuple[str, ...]) -> list[str]:
    return [f"x_{split}_{n}" for n in names] if names else [f"x_{split}"]


def _x_of(arrays: Mapping[str, np.ndarray], split: str, names: tuple[str, ...], path: Path) -> Any:
    """The ``split`` features: the array, or the inputs packed into one structured array."""
    if not names:
        return arrays[f"x_{split}"]
    try:
        return _inputs.pack({n: np.asarray(arrays[f"x_{split}_{n}"]) for n in names})
    except ValueError as err:
        raise _fail(
            f"The {split} inputs of {path} disagree: {err}; every input needs one entry per "
            "example."
        ) from None


def load_npz(
    path: str | os.PathLike[str],
    *,
    val_data: str | os.PathLike[str] | None = None,
    validation_from: ValidationFrom = "test",
    validation_fraction: float | None = None,
    seed: int = 0,
    scale: float = 1 / 255,
    offset: float = 0.0,
    class_names: Sequence[str] | None = None,
    label_kind: LabelKind = "auto",
) -> LabeledDataset:
    """Load ``x_train, y_train, x_test, y_test`` (and optionally ``class_names``) from a ``.npz``.

    Validation is ``x_val`` and ``y_val`` from the archive, or the ``val_data`` file (an
    ``.npz`` holding ``x_val``/``y_val`` or ``x``/``y``, scaled like the main data), used as
    they are. Otherwise ``validation_fraction`` of the test split is held out (default half;
    stratified for classes, seeded), or with ``validation_from="train"`` of train (default a
    tenth), which is only honest if the model never saw its train split.

    Integer features become ``float32(x) * scale + offset``; float features are kept.
    ``label_kind="classes"`` makes int64 class indices (one-hot rows become their index);
    ``"values"`` keeps numeric targets of any per-example shape as float32 (no classes);
    ``"auto"`` picks classes for strings, whole non-negative numbers, integer dtypes and
    one-hot rows, values otherwise. Labels that are whole numbers but targets (counts, ages)
    need ``label_kind="values"``.
    """
    hold_out = _hold_out_options(validation_from, validation_fraction, seed)
    _check_label_kind(label_kind)
    path = Path(path)

    names: tuple[str, ...] = ()

    def keys(files: list[str]) -> Sequence[str]:
        nonlocal names
        names = _npz_input_names(files)
        wanted = [*_x_keys("train", names), "y_train", *_x_keys("test", names), "y_test"]
        if missing := [k for k in wanted if k not in files]:
            layout = (
                f"x_<split>_<input> for the inputs {', '.join(names)}, and y_train, y_test"
                if names
                else f"{list(NPZ_KEYS)} (Keras' mnist.npz layout)"
            )
            raise _fail(
                f"{path} lacks the keys {missing}: found {sorted(files)}, expected {layout}; "
                "re-save it."
            )
        val_keys = [*_x_keys("val", names), "y_val"]
        given = [k for k in val_keys if k in files]
        if given and len(given) < len(val_keys):
            absent = [k for k in val_keys if k not in given]
            raise _fail(
                f"{path} holds {', '.join(given)} but not {', '.join(absent)}: store all of "
                "them (the validation split) or none (validation is then held out from the "
                "test split)."
            )
        extra = ["class_names"] if class_names is None and "class_names" in files else []
        return [*wanted, *given, *extra]

    arrays = _read_npz(path, keys)
    if "class_names" in arrays:
        class_names = [str(c) for c in arrays["class_names"].tolist()]
    own = None
    if "y_val" in arrays:
        own = (_x_of(arrays, "val", names, path), arrays["y_val"]), f"x_val from {path.name}"
    val, val_origin = _validation(own, val_data, names)
    return _build(
        (_x_of(arrays, "train", names, path), arrays["y_train"]),
        (_x_of(arrays, "test", names, path), arrays["y_test"]),
        val=val,
        val_origin=val_origin,
        test_origin="x_test",
        hold_out=hold_out,
        scale=scale,
        offset=offset,
        class_names=class_names,
        label_kind=label_kind,
        source=f"npz:{path}",
    )


def _read_csv(path: Path, label_column: str) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise _fail(
            f"Could not read {path} as CSV ({err}): it needs a header row and "
            "comma-separated values."
        ) from err
    if label_column not in frame.columns:
        raise _fail(
            f"{path} has no label column {label_column!r}; its columns are "
            f"{list(map(str, frame.columns))[:20]}: pass label_column= naming it."
        )
    if unlabeled := int(frame[label_column].isna().sum()):
        raise _fail(f"{unlabeled} rows of {path} have no {label_column!r} value: drop them.")
    return frame


def load_csv(
    path: str | os.PathLike[str],
    *,
    label_column: str = "label",
    test_path: str | os.PathLike[str] | None = None,
    test_fraction: float = 0.2,
    val_data: str | os.PathLike[str] | None = None,
    validation_from: ValidationFrom = "test",
    validation_fraction: float | None = None,
    seed: int = 0,
    scale: float = 1 / 255,
    offset: float = 0.0,
    image_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    label_kind: LabelKind = "auto",
) -> LabeledDataset:
    """Load a CSV of one label column and numeric feature (e.g. pixel) columns.

    The test split comes from a ``split`` column (``train`` / ``test`` / ``validation``) if
    there is one, else from ``test_path``, else ``test_fraction`` of the rows are held out.
    Validation is the ``split=validation`` rows or ``val_data`` if given, else held out as in
    :func:`load_npz` (``validation_from``, ``validation_fraction``), as is ``label_kind``.
    String labels are classes named by their sorted unique values. ``image_shape`` reshapes
    each row's features, e.g. ``(28, 28)``.
    """
    hold_out = _hold_out_options(validation_from, validation_fraction, seed)
    _check_label_kind(label_kind)
    path = Path(path)
    frame = _read_csv(path, label_column)
    has_split = "split" in frame.columns and label_column != "split"
    features = [c for c in frame.columns if c != label_column and not (has_split and c == "split")]
    if not features:
        raise _fail(f"{path} has only a label column: add numeric feature columns.")

    def to_xy(part: pd.DataFrame, where: Path) -> XY:
        if missing := [str(c) for c in features if c not in part.columns]:
            raise _fail(
                f"{where} lacks the feature columns {missing[:10]}: give it the same "
                f"columns as {path}."
            )
        if bad := [
            str(c)
            for c in features
            if pd.api.types.is_bool_dtype(part[c]) or not pd.api.types.is_numeric_dtype(part[c])
        ]:
            raise _fail(
                f"The feature columns {bad[:10]} of {where} are not numeric: drop or "
                f"encode them (every column but {label_column!r} and 'split' is a feature)."
            )
        x = part[features].to_numpy()
        if image_shape is not None:
            if math.prod(shape := tuple(map(int, image_shape))) != x.shape[1]:
                raise _fail(
                    f"{x.shape[1]} feature columns do not fill image_shape {shape}: "
                    f"pass an image_shape whose product is {x.shape[1]}."
                )
            x = x.reshape((len(x), *shape))
        return x, part[label_column].to_numpy()

    own = None
    if has_split:
        split = frame["split"].astype(str).str.strip().str.lower()
        split = split.replace({"val": "validation", "valid": "validation"})
        if unknown := sorted(set(split) - set(SPLITS)):
            raise _fail(
                f"The 'split' column of {path} holds {unknown[:5]}: use only train, "
                "validation and test."
            )
        train, test = to_xy(frame[split == "train"], path), to_xy(frame[split == "test"], path)
        test_origin = "split=test rows"
        if (split == "validation").any():
            own = to_xy(frame[split == "validation"], path), f"split=validation rows of {path.name}"
    elif test_path is not None:
        test_path = Path(test_path)
        train, test = to_xy(frame, path), to_xy(_read_csv(test_path, label_column), test_path)
        test_origin = test_path.name
    else:
        _check_fraction("test_fraction", test_fraction)
        x, y = to_xy(frame, path)
        # Encode first so the split is stratified by class index (not by raw, maybe string,
        # values) and only for classes; the kind found here is then kept for every split.
        encoded, names = _encode_labels({"train": y}, class_names, label_kind)
        class_names, label_kind = (names, "classes") if names else (None, "values")
        x_tr, y_tr, x_te, y_te = _carve(
            x, encoded["train"], test_fraction, seed, stratify=bool(names)
        )
        train, test = (x_tr, y_tr), (x_te, y_te)
        test_origin = f"{_percent(test_fraction)} of {path.name} with seed {seed}"
    val, val_origin = _validation(own, val_data)
    return _build(
        train,
        test,
        val=val,
        val_origin=val_origin,
        test_origin=test_origin,
        hold_out=hold_out,
        scale=scale,
        offset=offset,
        class_names=class_names,
        label_kind=label_kind,
        source=f"csv:{path}",
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_image(file: Path, mode: str, image_size: tuple[int, int] | None) -> np.ndarray:
    try:
        with Image.open(file) as opened:
            img = opened.convert(mode)
            if image_size is not None:
                img = img.resize((image_size[1], image_size[0]), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise _fail(f"Cannot read the image {file} ({err}): replace or remove the file.") from err


def _no_values(label_kind: object, what: str) -> None:
    """Image folders and the digits have class labels only."""
    if label_kind == "values":
        raise _fail(
            f"label_kind='values' does not fit {what}, whose labels are classes: pass "
            "'classes' or 'auto', or store numeric targets in an .npz or a CSV."
        )
    _check_label_kind(label_kind)


def _split_folders(root: Path) -> dict[str, Path]:
    """The split folders of a ``train/<class>/`` layout (``val/`` stands for ``validation/``),
    or ``{"all": root}`` when ``root`` is one folder of classes (which may be named "train")."""
    folders = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" not in folders or not _class_dirs(folders["train"]):
        return {"all": root}
    if (root / "val").is_dir():
        if "validation" in folders:
            raise _fail(f"{root} has both a validation/ and a val/ folder: merge them into one.")
        folders["validation"] = root / "val"
    return folders


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    test_fraction: float = 0.2,
    val_data: str | os.PathLike[str] | None = None,
    validation_from: ValidationFrom = "test",
    validation_fraction: float | None = None,
    seed: int = 0,
    scale: float = 1 / 255,
    offset: float = 0.0,
    color_mode: str = "grayscale",
    image_size: tuple[int, int] | None = None,
    label_kind: LabelKind = "auto",
) -> LabeledDataset:
    """Load images from ``root/<class>/`` or from ``root/{train,test,validation}/<class>/``.

    Without a ``test`` folder the test split is held out with ``test_fraction``. Validation is
    the ``validation/`` (or ``val/``) folder or ``val_data`` if given, else held out as in
    :func:`load_npz`. Class names are the sorted subfolder names (``label_kind="values"`` is
    refused). ``color_mode="grayscale"`` gives examples of shape (H, W), ``"rgb"`` (H, W, 3).
    Images of different sizes need ``image_size=(h, w)``.
    """
    hold_out = _hold_out_options(validation_from, validation_fraction, seed)
    _no_values(label_kind, "an image folder")
    root = Path(path)
    if not root.is_dir():
        raise _fail(f"There is no folder at {root}: pass a folder of class folders.")
    if color_mode not in ("grayscale", "rgb"):
        raise _fail(f"color_mode={color_mode!r} is not supported: use 'grayscale' or 'rgb'.")
    _check_fraction("test_fraction", test_fraction)
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    folders = _split_folders(root)
    names = sorted({d.name for folder in folders.values() for d in _class_dirs(folder)})
    entries = [
        (split, file, names.index(d.name))
        for split, folder in folders.items()
        for d in _class_dirs(folder)
        for file in sorted(d.rglob("*"))
        if file.suffix.lower() in IMAGE_EXTENSIONS
    ]
    if not entries:
        raise _fail(
            f"No images in {root}: put them in {root}/<class>/ (or train/<class>/ and "
            f"test/<class>/) with an extension among {sorted(IMAGE_EXTENSIONS)}."
        )
    mode = "L" if color_mode == "grayscale" else "RGB"
    images = [_read_image(file, mode, size) for _, file, _ in entries]
    # Reversed so that each size names the first file that has it.
    sizes = {
        im.shape[:2]: e[1].relative_to(root)
        for im, e in zip(images[::-1], entries[::-1], strict=True)
    }
    if len(sizes) > 1:
        seen = ", ".join(f"{h}x{w} ({file})" for (h, w), file in list(sizes.items())[:3])
        raise _fail(
            f"The images in {root} have different sizes: {seen}; pass "
            "image_size=(h, w) to resize them all to one size."
        )
    x_all, y_all = np.stack(images), np.array([e[2] for e in entries], dtype=np.int64)

    def pick(split: str) -> XY:
        index = [i for i, e in enumerate(entries) if e[0] == split]
        return x_all[index], y_all[index]

    train = pick("all") if "all" in folders else pick("train")
    if "test" in folders:
        test, test_origin = pick("test"), "the test/ folder"
    else:
        x_tr, y_tr, x_te, y_te = _carve(*train, test_fraction, seed, stratify=True)
        train, test = (x_tr, y_tr), (x_te, y_te)
        test_origin = f"{_percent(test_fraction)} of the images with seed {seed}"
    own = None
    if "validation" in folders:
        own = pick("validation"), f"the {folders['validation'].name}/ folder"
    val, val_origin = _validation(own, val_data)
    return _build(
        train,
        test,
        val=val,
        val_origin=val_origin,
        test_origin=test_origin,
        hold_out=hold_out,
        scale=scale,
        offset=offset,
        class_names=names,
        label_kind="classes",
        source=f"images:{root}",
    )


def load_digits(
    *,
    test_fraction: float = 0.2,
    val_data: str | os.PathLike[str] | None = None,
    validation_from: ValidationFrom = "test",
    validation_fraction: float | None = None,
    seed: int = 0,
    label_kind: LabelKind = "auto",
) -> LabeledDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled from 0..16 to 0..1.

    ``test_fraction`` of the images are held out as test (stratified, seeded); validation is
    ``val_data`` if given (0..16 pixels, scaled alike), else split off as in :func:`load_npz`
    (by default half of the held-out test images). The labels are classes.
    """
    hold_out = _hold_out_options(validation_from, validation_fraction, seed)
    _no_values(label_kind, "the digits")
    _check_fraction("test_fraction", test_fraction)
    bunch = sk_datasets.load_digits()
    # Pixels are whole numbers 0..16 stored as float; as uint8 they take the integer path.
    x_tr, y_tr, x_te, y_te = _carve(
        bunch.images.astype(np.uint8), bunch.target, test_fraction, seed, stratify=True
    )
    val, val_origin = _validation(None, val_data)
    return _build(
        (x_tr, y_tr),
        (x_te, y_te),
        val=val,
        val_origin=val_origin,
        test_origin=f"{_percent(test_fraction)} of the digits with seed {seed}",
        hold_out=hold_out,
        scale=1 / 16,
        offset=0.0,
        class_names=[str(i) for i in range(10)],
        label_kind="classes",
        source="digits",
    )


def _call(loader: Callable[..., LabeledDataset], kwargs: dict[str, Any], *args: Any) -> Any:
    accepted = [p for p in inspect.signature(loader).parameters if p != "path"]
    if unknown := sorted(set(kwargs) - set(accepted)):
        raise _fail(f"{loader.__name__} does not take {unknown}: its options are {accepted}.")
    return loader(*args, **kwargs)


def load_dataset(
    source: str | os.PathLike[str],
    *,
    val_data: str | os.PathLike[str] | None = None,
    validation_from: ValidationFrom = "test",
    validation_fraction: float | None = None,
    label_kind: LabelKind = "auto",
    **kwargs: Any,
) -> LabeledDataset:
    """Load ``"digits"``, a ``.npz``, a ``.csv`` or an image folder; other ``kwargs`` go to the loader.

    ``val_data`` (an ``.npz`` holding ``x_val``/``y_val`` or ``x``/``y``), ``validation_from``,
    ``validation_fraction`` and ``label_kind`` work as in :func:`load_npz` for every source.
    For ``"digits"``, ``scale`` and ``offset`` are ignored: its 0..16 pixels have a fixed scale.
    """
    # Checked before any file is read, so a typo fails fast with the option's name.
    _hold_out_options(validation_from, validation_fraction, kwargs.get("seed", 0))
    _check_label_kind(label_kind)
    kwargs.update(
        val_data=val_data,
        validation_from=validation_from,
        validation_fraction=validation_fraction,
        label_kind=label_kind,
    )
    if isinstance(source, str) and source == "digits":
        # Callers pass the generic 1/255 defaults (the ZenML step always does), which would
        # squash the 0..16 pixels into 0..0.06.
        kwargs.pop("scale", None)
        kwargs.pop("offset", None)
        return _call(load_digits, kwargs)
    path = Path(source).expanduser()
    if not path.exists():
        raise _fail(
            f"There is no file or folder at {path}: check the path, or pass 'digits' "
            "for the bundled 8x8 digits."
        )
    if path.is_dir():
        return _call(load_image_folder, kwargs, path)
    loaders = {".npz": load_npz, ".csv": load_csv}
    if path.suffix.lower() not in loaders:
        raise _fail(f"Unsupported dataset source {path}: use {_SUPPORTED}.")
    return _call(loaders[path.suffix.lower()], kwargs, path)

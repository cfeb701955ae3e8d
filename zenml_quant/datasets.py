"""Labeled data from ``.npz``, ``.csv``, image folders or the bundled digits, fitted to a model.

Every loader returns a validated :class:`LabeledDataset`: float32 features, int64 labels, a
seeded validation split carved from train, and the :class:`Preprocessing` that was applied so
the device can apply it too. Bad input raises :class:`InvalidDatasetError` saying what to change.
"""

from __future__ import annotations

import inspect
import math
import os
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from sklearn import datasets as sk_datasets
from sklearn.model_selection import train_test_split

from .errors import InvalidDatasetError
from .types import SPLITS, LabeledDataset, Preprocessing

__all__ = [
    "IMAGE_EXTENSIONS",
    "NPZ_KEYS",
    "load_csv",
    "load_dataset",
    "load_digits",
    "load_image_folder",
    "load_npz",
    "validate_dataset",
]

#: The arrays a ``.npz`` must hold (Keras' ``mnist.npz`` layout).
NPZ_KEYS: tuple[str, ...] = ("x_train", "y_train", "x_test", "y_test")
_NPZ_VAL_KEYS = ("x_val", "y_val")
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif"})
_SUPPORTED = "'digits', a .npz file, a .csv file, or a folder of class subfolders of images"
_SPLIT_FIX = {
    "train": "provide more training examples, or lower validation_fraction / test_fraction",
    "validation": "provide more training examples, or raise validation_fraction",
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


def _check_fraction(name: str, value: float) -> None:
    try:
        ok = 0.0 < float(value) < 1.0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise _fail(
            f"{name}={value!r} is not a fraction: pass a number strictly between 0 and 1, "
            f"e.g. {name}=0.1."
        )


def _bad_dtype(dtype: np.dtype, where: str) -> InvalidDatasetError:
    return _fail(
        f"The {where} are {_KINDS.get(dtype.kind, str(dtype))} (dtype {dtype}), not "
        "numbers: store them as integer pixels or floats (e.g. x.astype('uint8'))."
    )


def _preprocess(
    x: np.ndarray, scale: float, offset: float, *, where: str = "features"
) -> tuple[np.ndarray, bool]:
    """Integer features become ``float32(x) * scale + offset``; float features are only cast."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        return x.astype(np.float32) * np.float32(scale) + np.float32(offset), True
    if x.dtype.kind == "f":
        return x.astype(np.float32, copy=False), False
    raise _bad_dtype(x.dtype, where)


def _carve(x: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, ...]:
    """Split ``fraction`` off ``(x, y)``: returns ``x_keep, y_keep, x_out, y_out``."""
    n = len(y)
    n_out = math.ceil(fraction * n)
    if n_out >= n:  # too few to split; the empty part makes validate_dataset name the split
        return x, y, x[:0], y[:0]
    counts = np.unique(y, return_counts=True)[1]
    # Stratifying needs two examples of every class and room for one of each on both sides.
    stratify = y if counts.min() >= 2 and min(n_out, n - n_out) >= len(counts) else None
    x_keep, x_out, y_keep, y_out = train_test_split(
        x, y, test_size=n_out, random_state=seed, stratify=stratify
    )
    return x_keep, y_keep, x_out, y_out


def _check_lengths(split: str, x: np.ndarray, y: np.ndarray) -> None:
    if np.ndim(x) == 0 or np.ndim(y) == 0 or len(x) != len(y):
        nx, ny = (len(a) if np.ndim(a) else "no" for a in (x, y))
        raise _fail(
            f"The {split} split has {nx} examples but {ny} labels: features and labels "
            "must be arrays of the same length, one entry per example."
        )


def _integral_labels(y: np.ndarray, where: str = "labels") -> np.ndarray:
    if y.ndim != 1:
        raise _fail(
            f"The {where} have shape {y.shape}: pass one class index per example (N,) "
            "or one-hot rows (N, classes)."
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
                f"{np.unique(fractional)[:5]}: use integers 0, 1, ... or class names."
            )
    elif y.dtype.kind not in "biu":
        raise _fail(f"The {where} have dtype {y.dtype}: use integer class indices or names.")
    return y.astype(np.int64)


def _encode_labels(
    ys: Sequence[np.ndarray], class_names: Sequence[str] | None
) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """int64 labels of every split (encoded together, so indices agree) and the class names."""
    flat = []
    for y in map(np.asarray, ys):
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
        raise _fail(f"Label {low} is negative: labels are class indices 0, 1, ...; shift them.")
    top = max((int(y.max()) for y in ints if len(y)), default=-1)
    return ints, names or tuple(str(i) for i in range(top + 1))


def _build(
    train: XY,
    test: XY,
    *,
    val: XY | None = None,
    validation_fraction: float,
    seed: int,
    scale: float,
    offset: float,
    class_names: Sequence[str] | None,
    source: str,
) -> LabeledDataset:
    """Encode labels, carve validation from train (unless given), scale features, validate."""
    _check_fraction("validation_fraction", validation_fraction)
    parts = {"train": train, "test": test, **({"validation": val} if val is not None else {})}
    for split, (x, y) in parts.items():
        _check_lengths(split, np.asarray(x), np.asarray(y))
    ys, names = _encode_labels([y for _, y in parts.values()], class_names)
    arrays = {
        split: (np.asarray(x), y) for (split, (x, _)), y in zip(parts.items(), ys, strict=True)
    }
    if val is None:
        x_tr, y_tr, x_val, y_val = _carve(*arrays["train"], validation_fraction, seed)
        arrays["train"], arrays["validation"] = (x_tr, y_tr), (x_val, y_val)
    xs = {s: _preprocess(x, scale, offset, where=f"{s} features") for s, (x, _) in arrays.items()}
    if len({applied for _, applied in xs.values()}) > 1:
        raise _fail(
            "Some splits hold integer features and others floats, so they cannot be "
            "scaled alike: store every split with the same dtype."
        )
    applied = xs["train"][1]
    dataset = LabeledDataset(
        x_train=xs["train"][0],
        y_train=arrays["train"][1],
        x_val=xs["validation"][0],
        y_val=arrays["validation"][1],
        x_test=xs["test"][0],
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
    )
    validate_dataset(dataset)
    return dataset


def validate_dataset(dataset: LabeledDataset) -> None:
    """Raise :class:`InvalidDatasetError` unless every split is usable for training and scoring.

    No split may be empty; features and labels have equal lengths; features are finite float32
    with one per-example shape in all splits; labels are whole numbers in ``[0, num_classes)``.
    """
    shapes = {}
    for split in SPLITS:
        x, y = (np.asarray(a) for a in dataset.split(split))
        _check_lengths(split, x, y)
        if len(y) == 0:
            raise _fail(f"The {split} split is empty: {_SPLIT_FIX[split]}.")
        if x.dtype.kind not in "iuf":
            raise _bad_dtype(x.dtype, f"{split} features")
        if x.dtype != np.float32:
            raise _fail(
                f"The {split} features are {x.dtype}, not float32: load them with a "
                "zenml_quant.datasets loader (it scales integer pixels) or cast them."
            )
        if not np.isfinite(x).all():
            raise _fail(
                f"The {split} features contain {np.count_nonzero(~np.isfinite(x))} NaN "
                "or infinite values: fill them in or drop those examples."
            )
        labels, n = _integral_labels(y, f"{split} labels"), dataset.num_classes
        if (outside := np.unique(labels[(labels < 0) | (labels >= n)])).size:
            raise _fail(
                f"The {split} labels {outside[:10].tolist()} are outside [0, {n}) for {n} "
                "class names: pass class_names covering every label, or fix the labels."
            )
        shapes[split] = x.shape[1:]
    seen = np.unique(_integral_labels(np.asarray(dataset.y_train), "train labels"))
    if seen.size < 2:
        raise _fail(
            f"The train split holds a single class ({seen.tolist()}): a classifier cannot be "
            "calibrated, fine-tuned or scored meaningfully on it; include examples of every class."
        )
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{split} {shape}" for split, shape in shapes.items())
        raise _fail(
            f"The splits have different example shapes ({listed}): every example must "
            "have the same shape; resize or reshape the odd split."
        )


def load_npz(
    path: str | os.PathLike[str],
    *,
    validation_fraction: float = 0.1,
    seed: int = 0,
    scale: float = 1 / 255,
    offset: float = 0.0,
    class_names: Sequence[str] | None = None,
) -> LabeledDataset:
    """Load ``x_train, y_train, x_test, y_test`` (and optionally ``class_names``) from a ``.npz``.

    With ``x_val`` and ``y_val`` in the archive, those are the validation split (data the
    model may never have seen, as decisions need); otherwise validation is carved from train
    (``validation_fraction``, stratified, seeded).
    """
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not hasattr(archive, "files"):
            raise _fail(
                f"{path} holds a single array, not an archive: save it with "
                "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
            )
        with archive:
            if missing := [k for k in NPZ_KEYS if k not in archive.files]:
                raise _fail(
                    f"{path} lacks the keys {missing}: found {sorted(archive.files)}, "
                    f"expected {list(NPZ_KEYS)} (Keras' mnist.npz layout); re-save it."
                )
            arrays = {k: archive[k] for k in NPZ_KEYS}
            given = [k for k in _NPZ_VAL_KEYS if k in archive.files]
            if len(given) == 1:
                other = next(k for k in _NPZ_VAL_KEYS if k not in given)
                raise _fail(
                    f"{path} holds {given[0]} but not {other}: store both (the validation "
                    "split) or neither (validation is then carved from train)."
                )
            val = (archive["x_val"], archive["y_val"]) if given else None
            if class_names is None and "class_names" in archive.files:
                class_names = [str(c) for c in archive["class_names"].tolist()]
    except InvalidDatasetError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise _fail(
            f"Could not read {path} as a .npz archive ({err}): save it with np.savez "
            "and plain numeric arrays (object arrays need pickle, which is refused)."
        ) from err
    return _build(
        (arrays["x_train"], arrays["y_train"]),
        (arrays["x_test"], arrays["y_test"]),
        val=val,
        validation_fraction=validation_fraction,
        seed=seed,
        scale=scale,
        offset=offset,
        class_names=class_names,
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
    validation_fraction: float = 0.1,
    seed: int = 0,
    scale: float = 1 / 255,
    offset: float = 0.0,
    image_shape: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
) -> LabeledDataset:
    """Load a CSV of one label column and numeric feature (e.g. pixel) columns.

    The test split comes from a ``split`` column (``train`` / ``test`` / ``validation``) if
    there is one, else from ``test_path``, else it is carved with ``test_fraction``. String
    labels become indices of their sorted unique values, which name the classes.
    ``image_shape`` reshapes each row's features, e.g. ``(28, 28)``.
    """
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

    val = None
    if has_split:
        split = frame["split"].astype(str).str.strip().str.lower()
        split = split.replace({"val": "validation", "valid": "validation"})
        if unknown := sorted(set(split) - set(SPLITS)):
            raise _fail(
                f"The 'split' column of {path} holds {unknown[:5]}: use only train, "
                "validation and test."
            )
        train, test = to_xy(frame[split == "train"], path), to_xy(frame[split == "test"], path)
        if (split == "validation").any():
            val = to_xy(frame[split == "validation"], path)
    elif test_path is not None:
        test_path = Path(test_path)
        train, test = to_xy(frame, path), to_xy(_read_csv(test_path, label_column), test_path)
    else:
        _check_fraction("test_fraction", test_fraction)
        x, y = to_xy(frame, path)
        # Encode first so stratification sees class indices, not raw (maybe string) values.
        (y,), class_names = _encode_labels([y], class_names)
        x_tr, y_tr, x_te, y_te = _carve(x, y, test_fraction, seed)
        train, test = (x_tr, y_tr), (x_te, y_te)
    return _build(
        train,
        test,
        val=val,
        validation_fraction=validation_fraction,
        seed=seed,
        scale=scale,
        offset=offset,
        class_names=class_names,
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


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    validation_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    scale: float = 1 / 255,
    offset: float = 0.0,
    color_mode: str = "grayscale",
    image_size: tuple[int, int] | None = None,
) -> LabeledDataset:
    """Load images from ``root/<class>/`` or from ``root/{train,test,validation}/<class>/``.

    Without a ``test`` folder the test split is carved with ``test_fraction``. Class names are
    the sorted subfolder names. ``color_mode="grayscale"`` gives examples of shape (H, W), ``"rgb"`` (H, W, 3). Images of different sizes need ``image_size=(h, w)``.
    """
    root = Path(path)
    if not root.is_dir():
        raise _fail(f"There is no folder at {root}: pass a folder of class folders.")
    if color_mode not in ("grayscale", "rgb"):
        raise _fail(f"color_mode={color_mode!r} is not supported: use 'grayscale' or 'rgb'.")
    _check_fraction("test_fraction", test_fraction)
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    folders = {s: root / s for s in SPLITS if (root / s).is_dir()}
    if "train" not in folders or not _class_dirs(folders["train"]):
        folders = {"all": root}  # one folder of classes (which may be named "train" etc.)
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
        test = pick("test")
    else:
        x_tr, y_tr, x_te, y_te = _carve(*train, test_fraction, seed)
        train, test = (x_tr, y_tr), (x_te, y_te)
    return _build(
        train,
        test,
        val=pick("validation") if "validation" in folders else None,
        validation_fraction=validation_fraction,
        seed=seed,
        scale=scale,
        offset=offset,
        class_names=names,
        source=f"images:{root}",
    )


def load_digits(
    *, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0
) -> LabeledDataset:
    """scikit-learn's bundled 8x8 digits (1,797 images, 10 classes), scaled from 0..16 to 0..1."""
    _check_fraction("test_fraction", test_fraction)
    bunch = sk_datasets.load_digits()
    # Pixels are whole numbers 0..16 stored as float; as uint8 they take the integer path.
    x_tr, y_tr, x_te, y_te = _carve(
        bunch.images.astype(np.uint8), bunch.target, test_fraction, seed
    )
    return _build(
        (x_tr, y_tr),
        (x_te, y_te),
        validation_fraction=validation_fraction,
        seed=seed,
        scale=1 / 16,
        offset=0.0,
        class_names=[str(i) for i in range(10)],
        source="digits",
    )


def _call(loader: Callable[..., LabeledDataset], kwargs: dict[str, Any], *args: Any) -> Any:
    accepted = [p for p in inspect.signature(loader).parameters if p != "path"]
    if unknown := sorted(set(kwargs) - set(accepted)):
        raise _fail(f"{loader.__name__} does not take {unknown}: its options are {accepted}.")
    return loader(*args, **kwargs)


def load_dataset(source: str | os.PathLike[str], **kwargs: Any) -> LabeledDataset:
    """Load ``"digits"``, a ``.npz``, a ``.csv`` or an image folder; ``kwargs`` go to the loader.

    For ``"digits"``, ``scale`` and ``offset`` are ignored: its 0..16 pixels have a fixed scale.
    """
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

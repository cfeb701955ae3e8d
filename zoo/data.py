"""Data for the zoo: the local CIFAR-10 subset, and seeded synthetic sets a model can learn.

Every function returns a dict of numpy arrays in the layout of the ``.npz`` the tool reads
(:func:`zenml_quant.datasets.load_npz`): ``x_train, y_train, x_test, y_test`` and, when
``n_val`` > 0, ``x_val, y_val``. A model with several inputs gets one array per input, keyed
``x_<split>_<input name>``. :func:`write_npz` saves such a dict.

The synthetic sets are built so that the architecture that meets them has something real to
learn (a pattern the class depends on, not noise), and all splits of one call share one task:
prototypes, event orders and mixing matrices are drawn once, then examples from them.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

__all__ = [
    "CIFAR10_CLASSES",
    "SHARED_DATASETS",
    "Arrays",
    "DatasetUnavailable",
    "anomaly_data",
    "cifar10",
    "image_data",
    "kws_data",
    "one_hot",
    "regression_data",
    "sequence_data",
    "shared_dataset",
    "two_input_data",
    "write_npz",
]

Arrays = dict[str, np.ndarray]

#: ``../shared/datasets`` seen from the repository root; benchmarks' real data lives there.
#: It is not part of the project: a user's checkout has no such folder.
SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"

#: CIFAR-10's label order (Keras' ``cifar10.load_data()``).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class DatasetUnavailable(FileNotFoundError):
    """A local dataset file is absent; tests skip on it, benchmarks stop with its message."""


def shared_dataset(name: str) -> Path | None:
    """``../shared/datasets/<name>`` from the repository root, or None when it is absent."""
    path = SHARED_DATASETS / name
    return path if path.is_file() else None


def cifar10(
    path: str | os.PathLike[str] | None = None,
    *,
    scale: bool = False,
    limit_train: int | None = None,
    limit_test: int | None = None,
    seed: int = 0,
) -> Arrays:
    """The CIFAR-10 subset at ``../shared/datasets/cifar10.npz`` (or ``path``).

    Args:
        path: the ``.npz``; ``None`` looks in ``../shared/datasets`` from the repository root.
        scale: float32 pixels in [0, 1] instead of the file's uint8 0-255.
        limit_train, limit_test: keep a seeded random subset of this many examples.
        seed: chooses the subsets.

    Returns:
        ``x_train (N,32,32,3)``, ``y_train (N,)`` int64, ``x_test``, ``y_test`` and
        ``class_names``. The file is rebuilt from JPEG copies of the images, so models trained
        on the original CIFAR-10 score lower on it: train and evaluate on this file itself.

    Raises:
        DatasetUnavailable: the file is absent (always so on a user's machine).
    """
    file = Path(path) if path is not None else SHARED_DATASETS / "cifar10.npz"
    if not file.is_file():
        raise DatasetUnavailable(
            f"CIFAR-10 subset not found at {file}: it is local benchmark data "
            "(../shared/datasets/cifar10.npz from the repository root), not shipped with the project"
        )
    rng = np.random.default_rng(seed)
    out: Arrays = {}
    with np.load(file) as archive:
        for split, limit in (("train", limit_train), ("test", limit_test)):
            x, y = archive[f"x_{split}"], archive[f"y_{split}"].reshape(-1).astype(np.int64)
            if limit is not None and limit < len(x):
                keep = np.sort(rng.choice(len(x), size=limit, replace=False))
                x, y = x[keep], y[keep]
            out[f"x_{split}"] = (x.astype(np.float32) / 255.0) if scale else x
            out[f"y_{split}"] = y
        names = archive["class_names"] if "class_names" in archive.files else CIFAR10_CLASSES
    out["class_names"] = np.asarray(names, dtype=str)
    return out


def _splits(
    make: Callable[[int, str], tuple[np.ndarray, np.ndarray]],
    n_train: int,
    n_test: int,
    n_val: int,
) -> Arrays:
    """Call ``make(n, split)`` for each split with examples, in the tool's key layout."""
    out: Arrays = {}
    for split, n in (("train", n_train), ("val", n_val), ("test", n_test)):
        if n < 0:
            raise ValueError(f"n_{split}={n}: a split cannot have a negative size")
        if n or split != "val":
            out[f"x_{split}"], out[f"y_{split}"] = make(n, split)
    return out


def _check_classes(classes: int, limit: int, what: str) -> None:
    if not 2 <= classes <= limit:
        raise ValueError(f"classes={classes}: {what} supports 2 to {limit} classes")


def _gratings(rng: np.random.Generator, angles: np.ndarray, height: int, width: int) -> np.ndarray:
    """Sinusoidal stripes at ``angles`` (radians), random frequency and phase, values in [0, 1].

    The orientation is the only thing that tells classes apart: a convolution sees it in
    every patch, so global pooling keeps it, as it would keep the texture of a real object.
    """
    n = len(angles)
    v, u = np.meshgrid(np.linspace(0, 1, height), np.linspace(0, 1, width), indexing="ij")
    cycles = rng.uniform(2.0, 4.0, size=(n, 1, 1))  # stripes per image side: several periods
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
    direction = u * np.cos(angles)[:, None, None] + v * np.sin(angles)[:, None, None]
    return 0.5 + 0.5 * np.cos(2 * np.pi * cycles * direction + phase)


def image_data(
    n_train: int,
    n_test: int,
    *,
    shape: tuple[int, int, int] = (32, 32, 3),
    classes: int = 10,
    raw: bool = False,
    noise: float = 0.15,
    n_val: int = 0,
    seed: int = 0,
) -> Arrays:
    """Images of oriented stripes; class ``c`` has orientation ``c * 180 / classes`` degrees.

    Each image gets a random frequency, phase, contrast, colour tint and pixel noise, so only
    the orientation carries the class. ``raw=True`` gives uint8 0-255 pixels (for models with
    their own Rescaling/Normalization layer); otherwise float32 in [0, 1].
    """
    _check_classes(classes, 36, "image_data")
    height, width, channels = shape
    rng = np.random.default_rng(seed)

    def make(n: int, _split: str) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, size=n)
        # float32 throughout: a few thousand 96x96x3 images in float64 would take gigabytes.
        stripes = _gratings(rng, np.pi * y / classes, height, width).astype(np.float32)
        contrast = rng.uniform(0.5, 1.0, size=(n, 1, 1, 1)).astype(np.float32)
        tint = rng.uniform(0.6, 1.0, size=(n, 1, 1, channels)).astype(np.float32)
        x = (stripes[..., None] - 0.5) * (contrast * tint) + 0.5
        x += noise * rng.standard_normal(size=x.shape, dtype=np.float32)
        np.clip(x, 0.0, 1.0, out=x)
        if raw:
            return np.round(x * 255).astype(np.uint8), y.astype(np.int64)
        return x, y.astype(np.int64)

    return _splits(make, n_train, n_test, n_val)


def kws_data(
    n_train: int,
    n_test: int,
    *,
    shape: tuple[int, int, int] = (49, 10, 1),
    classes: int = 12,
    noise: float = 0.3,
    n_val: int = 0,
    seed: int = 0,
) -> Arrays:
    """Spectrogram-like ``(frames, coefficients, 1)`` maps with one "word" per class.

    A word is three Gaussian blobs at class-specific (time offset, coefficient) positions,
    like the formant tracks of a spoken word. Each example places its class's word at a random
    frame with a random loudness over noise, so the model must find the word wherever it is:
    what the DS-CNN's convolutions and average pooling are for.
    """
    _check_classes(classes, 64, "kws_data")
    frames, coefficients, _ = shape
    word_frames = max(4, frames // 3)  # a word spans about a third of the window
    rng = np.random.default_rng(seed)
    t_grid, f_grid = np.meshgrid(np.arange(word_frames), np.arange(coefficients), indexing="ij")
    words = np.zeros((classes, word_frames, coefficients))
    for word in words:
        for t0, f0 in zip(
            rng.uniform(0, word_frames, size=3), rng.uniform(0, coefficients, size=3)
        ):
            word += np.exp(-((t_grid - t0) ** 2) / 4.0 - (f_grid - f0) ** 2 / 1.5)

    def make(n: int, _split: str) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, classes, size=n)
        x = rng.normal(0, noise, size=(n, frames, coefficients))
        starts = rng.integers(0, frames - word_frames + 1, size=n)
        loudness = rng.uniform(0.7, 1.3, size=n)
        for i in range(n):
            x[i, starts[i] : starts[i] + word_frames] += loudness[i] * words[y[i]]
        return x[..., None].astype(np.float32), y.astype(np.int64)

    return _splits(make, n_train, n_test, n_val)


def sequence_data(
    n_train: int,
    n_test: int,
    *,
    timesteps: int = 20,
    features: int = 8,
    classes: int = 4,
    events: int = 4,
    noise: float = 0.4,
    n_val: int = 0,
    seed: int = 0,
) -> Arrays:
    """Sequences whose class is the *order* in which the same ``events`` occur.

    Every example holds the same ``events`` feature vectors, one after another from a random
    start, over noise; class ``c`` is one fixed permutation of their order. Any single time
    step, and the average over time, looks alike for all classes: only the temporal pattern
    tells them apart. ``classes=1`` makes a binary set for a single sigmoid output: label 1
    is the target order, label 0 another order.
    """
    binary = classes == 1
    orders_needed = 2 if binary else classes
    if not binary:
        _check_classes(classes, math.factorial(events), f"sequence_data with {events} events")
    gap = 2  # steps per event: each event lasts two steps, so a 3-wide filter sees it whole
    if events * gap > timesteps:
        raise ValueError(f"timesteps={timesteps} is too short for {events} events of {gap} steps")
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(events, features))
    vectors *= 2.0 / np.linalg.norm(vectors, axis=1, keepdims=True)
    all_orders = list(itertools.permutations(range(events)))
    picked = rng.choice(len(all_orders), size=orders_needed, replace=False)
    orders = np.asarray([all_orders[i] for i in picked])

    def make(n: int, _split: str) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, orders_needed, size=n)
        x = rng.normal(0, noise, size=(n, timesteps, features))
        starts = rng.integers(0, timesteps - events * gap + 1, size=n)
        for i in range(n):
            for slot, event in enumerate(orders[y[i]]):
                t = starts[i] + slot * gap
                x[i, t : t + gap] += vectors[event]
        labels = (y == 0).astype(np.int64) if binary else y.astype(np.int64)
        return x.astype(np.float32), labels

    return _splits(make, n_train, n_test, n_val)


def anomaly_data(
    n_train: int,
    n_test: int,
    *,
    dim: int = 640,
    rank: int = 4,
    anomaly_fraction: float = 0.5,
    broken_fraction: float = 0.25,
    noise: float = 0.05,
    n_val: int = 0,
    seed: int = 0,
) -> Arrays:
    """Normal examples from a low-rank generator, and anomalies that break its correlations.

    Normal: ``x = z @ W + b + noise`` with ``z`` of size ``rank`` (a machine's sound varies in
    a few ways only). An anomaly draws ``z`` the same way but mixes a random
    ``broken_fraction`` of the features with fresh weights: each feature keeps its scale, so
    no threshold on one value finds it, but the features no longer agree with each other,
    and an autoencoder trained on normal data reconstructs them badly.

    ``x_train`` holds normal examples only (``y_train`` all 0), as anomaly detectors are
    trained; test and validation mix in ``anomaly_fraction`` anomalies, labelled 1.
    """
    if not 0 < anomaly_fraction < 1:
        raise ValueError(f"anomaly_fraction={anomaly_fraction}: must lie strictly between 0 and 1")
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(rank, dim)) / np.sqrt(rank)
    offset = rng.normal(0, 0.5, size=dim)

    def make(n: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        y = np.zeros(n, np.int64) if split == "train" else (rng.random(n) < anomaly_fraction)
        x = rng.normal(size=(n, rank)) @ weights + offset
        for i in np.flatnonzero(y):
            broken = rng.random(dim) < broken_fraction
            x[i, broken] = rng.normal(size=rank) @ weights[:, broken] + offset[broken]
        x += rng.normal(0, noise, size=x.shape)
        return x.astype(np.float32), np.asarray(y, np.int64)

    return _splits(make, n_train, n_test, n_val)


def regression_data(
    n_train: int,
    n_test: int,
    *,
    input_dim: int = 13,
    outputs: int = 1,
    noise: float = 0.1,
    n_val: int = 0,
    seed: int = 0,
) -> Arrays:
    """Targets from a known smooth nonlinear function of the features, plus Gaussian noise.

    Output ``k`` is ``sin(x.a_k) + 0.5 * x.b_k + 0.25 * (x.c_k)^2`` with fixed unit-variance
    projections of standard-normal features; ``noise`` is the error floor an ideal model
    reaches (its MAE is about ``0.8 * noise``). ``y`` is ``(n,)`` for one output, else ``(n, k)``.
    """
    rng = np.random.default_rng(seed)
    projections = rng.normal(size=(3, outputs, input_dim)) / np.sqrt(input_dim)

    def make(n: int, _split: str) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, input_dim))
        a, b, c = (x @ p.T for p in projections)
        y = np.sin(a) + 0.5 * b + 0.25 * c**2 + rng.normal(0, noise, size=(n, outputs))
        y = y[:, 0] if outputs == 1 else y
        return x.astype(np.float32), y.astype(np.float32)

    return _splits(make, n_train, n_test, n_val)


def two_input_data(
    n_train: int,
    n_test: int,
    *,
    image_shape: tuple[int, int, int] = (16, 16, 1),
    meta_dim: int = 4,
    names: tuple[str, str] = ("image", "meta"),
    noise: float = 0.15,
    meta_noise: float = 0.0,
    n_val: int = 0,
    seed: int = 0,
) -> Arrays:
    """Four classes that need both inputs: ``class = 2 * image_bit + meta_bit``.

    The image bit is the stripe orientation (horizontal or vertical); the meta bit is the sign
    of the first meta feature before ``meta_noise`` (Gaussian) is added to it; the other meta
    features are noise. Either input alone caps accuracy at 50 %. Keys are
    ``x_<split>_<name>`` for both input names.
    """
    height, width, channels = image_shape
    image_name, meta_name = names
    rng = np.random.default_rng(seed)
    out: Arrays = {}

    def make(n: int, split: str) -> tuple[np.ndarray, np.ndarray]:
        image_bit, meta_bit = rng.integers(0, 2, size=n), rng.integers(0, 2, size=n)
        stripes = _gratings(rng, np.pi / 2 * image_bit, height, width)[..., None]
        image = np.clip(stripes + rng.normal(0, noise, size=(n, height, width, channels)), 0, 1)
        meta = rng.normal(size=(n, meta_dim))
        meta[:, 0] = (2 * meta_bit - 1) * rng.uniform(0.5, 1.5, size=n)
        meta[:, 0] += rng.normal(0, meta_noise, size=n) if meta_noise else 0.0
        out[f"x_{split}_{meta_name}"] = meta.astype(np.float32)
        return image.astype(np.float32), (2 * image_bit + meta_bit).astype(np.int64)

    for key, value in _splits(make, n_train, n_test, n_val).items():
        # The image array comes back as x_<split>; it is keyed by the input name like the meta.
        out[f"{key}_{image_name}" if key.startswith("x_") else key] = value
    return dict(sorted(out.items()))


def one_hot(arrays: Arrays, classes: int) -> Arrays:
    """A copy of ``arrays`` with every ``y_<split>`` as float32 one-hot rows of ``classes``."""
    out = dict(arrays)
    for key, value in arrays.items():
        if key.startswith("y_"):
            out[key] = np.eye(classes, dtype=np.float32)[np.asarray(value, np.int64).reshape(-1)]
    return out


def write_npz(path: str | os.PathLike[str], arrays: Arrays) -> Path:
    """Save ``arrays`` as an uncompressed ``.npz`` the tool's ``load_npz`` reads; return the path.

    Raises:
        ValueError: a train or test split lacks its ``x`` (or ``x_<split>_<input>``) or ``y``.
    """
    for split in ("train", "test"):
        has_x = f"x_{split}" in arrays or any(k.startswith(f"x_{split}_") for k in arrays)
        if not has_x or f"y_{split}" not in arrays:
            raise ValueError(
                f"arrays lack x_{split}/y_{split} (keys: {sorted(arrays)}): the tool reads "
                "x_train, y_train, x_test, y_test"
            )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as handle:  # a file handle keeps np.savez from appending ".npz"
        np.savez(handle, **arrays)
    return path

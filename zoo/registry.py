"""``ZOO``: every zoo model with its data, task, metric and two sizes (tests, benchmarks).

``entry.build(**entry.tiny)`` is a model that builds and trains in about a second, for tests;
``entry.build(**entry.benchmark)`` is the real architecture. ``entry.tiny_data(seed=...)`` and
``entry.data(seed=...)`` give matching arrays (ResNet-8's benchmark data is the local CIFAR-10
subset, which raises :class:`zoo.data.DatasetUnavailable` where it is absent).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from zenml_quant._compat import keras3, tf_keras

from . import data as D
from .audio import ds_cnn
from .dense import dense_autoencoder, regression_net
from .keras3_models import keras3_cnn
from .mobilenet import mobilenet_v2
from .resnet import resnet8, resnet8_reference
from .sequence import conv1d_classifier, gru_classifier, lstm_classifier
from .training import Metric, Task, score, train
from .vision import bn_after_pooling, normalization_cnn, rescaling_cnn, two_input_net

__all__ = ["ZOO", "ZooEntry"]


@dataclass(frozen=True)
class ZooEntry:
    """One zoo model: how to build it, what data it learns, and how its quality is measured.

    Attributes:
        name: the registry key.
        build: the builder; ``build(**tiny)`` or ``build(**benchmark)``.
        data: benchmark-size arrays for the benchmark-size model, called as ``data(seed=...)``.
        tiny_data: a few hundred examples matching the tiny model, ``tiny_data(seed=...)``.
        task: ``classification``, ``binary``, ``regression`` or ``reconstruction``.
        metric: the task's natural metric: ``top1``, ``auc``, ``mae`` or ``reconstruction_auc``.
        tiny: builder arguments for tests.
        benchmark: builder arguments for benchmarks (the published sizes).
        loss: ``categorical_crossentropy`` for one-hot training (ResNet-8's reference);
            None lets :func:`zoo.training.train` choose from the task.
    """

    name: str
    build: Callable[..., Any]
    data: Callable[..., D.Arrays]
    tiny_data: Callable[..., D.Arrays]
    task: Task
    metric: Metric
    tiny: Mapping[str, Any] = field(default_factory=dict)
    benchmark: Mapping[str, Any] = field(default_factory=dict)
    loss: str | None = None

    def build_tiny(self, seed: int = 0) -> Any:
        """The tiny model, its weights initialised from ``seed``."""
        _seed(seed)
        return self.build(**self.tiny)

    def build_benchmark(self, seed: int = 0) -> Any:
        """The benchmark-size model, its weights initialised from ``seed``."""
        _seed(seed)
        return self.build(**self.benchmark)

    def train(self, model: Any, data: D.Arrays, epochs: int = 1, **kwargs: Any) -> Any:
        """Compile ``model`` with this entry's loss and fit it on ``data``; returns the History."""
        return train(model, data, epochs, task=self.task, loss=self.loss, **kwargs)

    def score(self, model: Any, data: D.Arrays, *, split: str = "test") -> float:
        """``model``'s quality on ``data``'s ``split``, in this entry's metric."""
        return score(model, data, self.metric, split=split)


# Benchmark data is noisier than the tiny sets: a task every model solves perfectly cannot show
# what compression costs. At these settings the benchmark-size models reach roughly 85-95 %
# after a few epochs (checked: GRU 0.88, Conv1D 0.88, two-input 0.91 after 5 epochs), and each
# set has a validation split of its own, so decisions need not be made on the test split.
_HARD_IMAGES: dict[str, Any] = {"noise": 0.35, "n_val": 1000}
_HARD_SEQUENCES: dict[str, Any] = {"noise": 1.0, "n_val": 1000}


def _seed(seed: int) -> None:
    """Seed the initialisers of both Keras flavours (the zoo has builders of each)."""
    tf_keras.utils.set_random_seed(seed)
    if keras3 is not None:
        keras3.utils.set_random_seed(seed)


def _entries() -> dict[str, ZooEntry]:
    seq_tiny = {"timesteps": 12, "features": 4, "classes": 3, "units": 8}
    seq_bench = {"timesteps": 20, "features": 8, "classes": 4, "units": 32}
    seq_tiny_data = partial(D.sequence_data, 300, 150, timesteps=12, features=4, classes=3)
    seq_bench_data = partial(
        D.sequence_data, 8000, 2000, **_HARD_SEQUENCES, timesteps=20, features=8, classes=4
    )
    small_images = {"input_shape": (16, 16, 3), "classes": 4, "filters": 4}
    small_image_data = partial(D.image_data, 300, 150, shape=(16, 16, 3), classes=4)
    raw_small = partial(D.image_data, 300, 150, shape=(16, 16, 3), classes=4, raw=True)
    raw_bench = partial(
        D.image_data, 10000, 2000, **_HARD_IMAGES, shape=(32, 32, 3), classes=10, raw=True
    )
    entries = [
        ZooEntry(
            "mobilenet_v2",
            mobilenet_v2,
            # 96x96x3 float32 is 110 KB an image: 3,000 of them are 330 MB, enough to hold.
            partial(D.image_data, 2000, 500, noise=0.35, n_val=500, shape=(96, 96, 3), classes=10),
            partial(D.image_data, 300, 150, shape=(32, 32, 3), classes=4),
            "classification",
            "top1",
            tiny={
                "alpha": 0.1,
                "input_shape": (32, 32, 3),
                "classes": 4,
                "last_block_filters": 32,
                "max_repeats": 2,
            },
            benchmark={"alpha": 0.35, "input_shape": (96, 96, 3), "classes": 10},
        ),
        ZooEntry(
            "ds_cnn",
            ds_cnn,
            partial(D.kws_data, 10000, 2000, n_val=1000, noise=0.6, classes=12),
            partial(D.kws_data, 300, 150, classes=4),
            "classification",
            "top1",
            tiny={"classes": 4, "filters": 8},
            benchmark={"classes": 12, "filters": 64},
        ),
        ZooEntry(
            "resnet8",
            resnet8,
            partial(D.cifar10, scale=True),
            partial(D.image_data, 300, 150, shape=(16, 16, 3), classes=4),
            "classification",
            "top1",
            tiny={"input_shape": (16, 16, 3), "classes": 4, "filters": (4, 8, 8)},
            benchmark={"input_shape": (32, 32, 3), "classes": 10, "filters": (16, 32, 64)},
        ),
        ZooEntry(
            "resnet8_reference",
            resnet8_reference,
            partial(D.cifar10, scale=True),
            partial(D.image_data, 300, 150, shape=(16, 16, 3), classes=4),
            "classification",
            "top1",
            tiny={"input_shape": (16, 16, 3), "classes": 4, "filters": (4, 8, 8)},
            benchmark={"input_shape": (32, 32, 3), "classes": 10, "filters": (16, 32, 64)},
            loss="categorical_crossentropy",
        ),
        ZooEntry(
            "lstm_classifier",
            lstm_classifier,
            seq_bench_data,
            seq_tiny_data,
            "classification",
            "top1",
            tiny=seq_tiny,
            benchmark=seq_bench,
        ),
        ZooEntry(
            "gru_classifier",
            gru_classifier,
            seq_bench_data,
            seq_tiny_data,
            "classification",
            "top1",
            tiny=seq_tiny,
            benchmark=seq_bench,
        ),
        ZooEntry(
            "conv1d_classifier",
            conv1d_classifier,
            partial(
                D.sequence_data, 8000, 2000, **_HARD_SEQUENCES, timesteps=64, features=3, classes=4
            ),
            partial(D.sequence_data, 300, 150, timesteps=32, features=3, classes=3),
            "classification",
            "top1",
            tiny={"timesteps": 32, "features": 3, "classes": 3, "filters": (8, 8)},
            benchmark={"timesteps": 64, "features": 3, "classes": 4, "filters": (16, 32)},
        ),
        ZooEntry(
            "conv1d_detector",
            conv1d_classifier,
            partial(
                D.sequence_data, 8000, 2000, **_HARD_SEQUENCES, timesteps=64, features=3, classes=1
            ),
            partial(D.sequence_data, 300, 150, timesteps=32, features=3, classes=1),
            "binary",
            "auc",
            tiny={"timesteps": 32, "features": 3, "classes": 1, "filters": (8, 8)},
            benchmark={"timesteps": 64, "features": 3, "classes": 1, "filters": (16, 32)},
        ),
        ZooEntry(
            "dense_autoencoder",
            dense_autoencoder,
            partial(D.anomaly_data, 10000, 2000, n_val=1000, dim=640),
            partial(D.anomaly_data, 300, 150, dim=64),
            "reconstruction",
            "reconstruction_auc",
            tiny={"input_dim": 64, "hidden": 16, "bottleneck": 4, "depth": 2},
            benchmark={"input_dim": 640, "hidden": 128, "bottleneck": 8},
        ),
        ZooEntry(
            "regression_net",
            regression_net,
            partial(D.regression_data, 10000, 2000, n_val=1000, input_dim=13),
            partial(D.regression_data, 300, 150, input_dim=13),
            "regression",
            "mae",
            tiny={"input_dim": 13, "hidden": (16,)},
            benchmark={"input_dim": 13, "hidden": (64, 32)},
        ),
        ZooEntry(
            "two_input_net",
            two_input_net,
            partial(D.two_input_data, 10000, 2000, n_val=1000, meta_noise=0.7),
            partial(D.two_input_data, 300, 150),
            "classification",
            "top1",
            tiny={"filters": 4},
            benchmark={"filters": 16},
        ),
        ZooEntry(
            "bn_after_pooling",
            bn_after_pooling,
            partial(D.image_data, 10000, 2000, **_HARD_IMAGES, shape=(28, 28, 1), classes=10),
            partial(D.image_data, 300, 150, shape=(16, 16, 1), classes=4),
            "classification",
            "top1",
            tiny={"input_shape": (16, 16, 1), "classes": 4, "filters": 4},
            benchmark={"input_shape": (28, 28, 1), "classes": 10, "filters": 16},
        ),
        ZooEntry(
            "rescaling_cnn",
            rescaling_cnn,
            raw_bench,
            raw_small,
            "classification",
            "top1",
            tiny=small_images,
            benchmark={"input_shape": (32, 32, 3), "classes": 10, "filters": 16},
        ),
        ZooEntry(
            "normalization_cnn",
            normalization_cnn,
            raw_bench,
            raw_small,
            "classification",
            "top1",
            tiny=small_images,
            benchmark={"input_shape": (32, 32, 3), "classes": 10, "filters": 16},
        ),
        ZooEntry(
            "keras3_cnn",
            keras3_cnn,
            partial(D.image_data, 10000, 2000, **_HARD_IMAGES, shape=(32, 32, 3), classes=10),
            small_image_data,
            "classification",
            "top1",
            tiny=small_images,
            benchmark={"input_shape": (32, 32, 3), "classes": 10, "filters": 16},
        ),
    ]
    return {entry.name: entry for entry in entries}


#: Every zoo model by name.
ZOO: dict[str, ZooEntry] = _entries()

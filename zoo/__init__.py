"""A zoo of real architectures for the repository's tests and benchmarks (not in the wheel).

Builders return ``tf_keras`` models (``keras3_cnn`` a Keras 3 one) with fixed layer names and a
width knob, so tests build tiny versions and benchmarks the published ones. :data:`ZOO` pairs
each with its data, task, metric and sizes; :mod:`zoo.data` holds the data.
"""

from __future__ import annotations

from .audio import ds_cnn
from .data import DatasetUnavailable, cifar10, write_npz
from .dense import dense_autoencoder, regression_net
from .keras3_models import keras3_cnn, save_keras3_cnn
from .mobilenet import mobilenet_v2
from .registry import ZOO, ZooEntry
from .resnet import resnet8, resnet8_reference
from .sequence import conv1d_classifier, gru_classifier, lstm_classifier
from .training import score, train
from .vision import bn_after_pooling, normalization_cnn, rescaling_cnn, two_input_net

__all__ = [
    "ZOO",
    "DatasetUnavailable",
    "ZooEntry",
    "bn_after_pooling",
    "cifar10",
    "conv1d_classifier",
    "dense_autoencoder",
    "ds_cnn",
    "gru_classifier",
    "keras3_cnn",
    "lstm_classifier",
    "mobilenet_v2",
    "normalization_cnn",
    "regression_net",
    "rescaling_cnn",
    "resnet8",
    "resnet8_reference",
    "save_keras3_cnn",
    "score",
    "train",
    "two_input_net",
    "write_npz",
]

"""The demo model: a small CNN trained on scikit-learn's bundled 8x8 digits in seconds."""

from __future__ import annotations

from ._compat import tf_keras
from .types import LabeledDataset

__all__ = ["build_demo_cnn", "compile_classifier", "fit_classifier", "train_demo_model"]


def build_demo_cnn(
    input_shape: tuple[int, ...] = (8, 8, 1), num_classes: int = 10
) -> tf_keras.Model:
    """Conv(16) -> BN -> ReLU -> Conv(32) -> ReLU -> MaxPool -> Flatten -> Dropout -> Dense.

    Small enough to train on a laptop CPU in seconds, big enough that int8 makes a difference.
    """
    layers = tf_keras.layers
    return tf_keras.Sequential(
        [
            layers.Input(input_shape),
            layers.Conv2D(16, 3, padding="same", name="conv1"),
            layers.BatchNormalization(name="bn1"),
            layers.ReLU(name="relu1"),
            layers.Conv2D(32, 3, padding="same", activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool"),
            layers.Flatten(name="flatten"),
            layers.Dropout(0.2, name="dropout"),
            layers.Dense(num_classes, name="logits"),
        ],
        name="demo_cnn",
    )


def train_demo_model(
    dataset: LabeledDataset, *, epochs: int = 15, batch_size: int = 32, seed: int = 0
) -> tf_keras.Model:
    """Train :func:`build_demo_cnn` on ``dataset`` (examples of shape (H, W) or (H, W, 1))."""
    tf_keras.utils.set_random_seed(seed)
    shape = dataset.sample_shape if len(dataset.sample_shape) == 3 else (*dataset.sample_shape, 1)
    model = build_demo_cnn(shape, dataset.num_classes)
    return fit_classifier(model, dataset, epochs=epochs, batch_size=batch_size)


def fit_classifier(
    model: tf_keras.Model, dataset: LabeledDataset, *, epochs: int, batch_size: int
) -> tf_keras.Model:
    """Compile ``model`` (Adam 2e-3, cross-entropy on logits, accuracy) and fit it on train,
    watching validation. Examples of shape (H, W) get a channel axis."""
    x_train, x_val = dataset.x_train, dataset.x_val
    if x_train.ndim == 3:
        x_train, x_val = x_train[..., None], x_val[..., None]
    compile_classifier(model)
    model.fit(
        x_train,
        dataset.y_train,
        validation_data=(x_val, dataset.y_val),
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
    )
    return model


def compile_classifier(model: tf_keras.Model) -> None:
    """Adam 2e-3, sparse cross-entropy on logits, accuracy: how the bundled models train."""
    model.compile(
        optimizer=tf_keras.optimizers.Adam(2e-3),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )

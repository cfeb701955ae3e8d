"""Steps that load the user's model and data (never cached: the files may change), and the demo's trainer."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from zenml import step

from ... import conform as _conform
from ... import datasets as _datasets
from ... import models as _models
from ...targets import Targets
from ...tasks import dataset_metric
from ...types import (
    LabeledDataset,
)
from .._runtime import STEP_SETTINGS, local_copy, record_metadata
from ..materializers import (
    KerasModelMaterializer,
    LabeledDatasetMaterializer,
)

__all__ = ["load_keras_model", "load_labeled_dataset", "train_demo_model_step"]

logger = logging.getLogger(__name__)


# Loading steps read external files: a cached result would hide a model or dataset that
# changed at the same path, so they always run.
@step(
    name="zq_load_keras_model",
    enable_cache=False,
    output_materializers=KerasModelMaterializer,
    settings=STEP_SETTINGS,
)
def load_keras_model(path: str, allow_unsafe: bool = False) -> Annotated[Any, "zq_keras_model"]:
    """Load a ``.keras``, ``.h5`` or SavedModel (local path or artifact-store URI).

    ``allow_unsafe`` lets ``Lambda`` layers (Python code run on load) through: only for files
    you trust.
    """
    model = _models.load_model(local_copy(path), allow_unsafe=allow_unsafe)
    total, _trainable = _models.count_params(model)
    record_metadata({"flavour": _models.model_flavour(model), "params": total, "source": path})
    return model


@step(
    name="zq_load_labeled_dataset",
    enable_cache=False,
    output_materializers=LabeledDatasetMaterializer,
    settings=STEP_SETTINGS,
)
def load_labeled_dataset(
    source: str,
    model: Any = None,
    scale: float = 1 / 255,
    offset: float = 0.0,
    validation_fraction: float | None = None,
    seed: int = 0,
    val_data: str | None = None,
    validation_from: str = "test",
    task: str | None = None,
    metric: str | None = None,
    higher_is_better: bool | None = None,
    targets: dict[str, Any] | None = None,
    budget: float | None = None,
    relative_budget: bool = False,
) -> Annotated[LabeledDataset, "zq_dataset"]:
    """Load ``source`` (``"digits"``, ``.npz``, ``.csv`` or an image folder) and fit it to ``model``.

    Integer features become ``x * scale + offset``. Validation is ``x_val``/``y_val`` or
    ``val_data`` when given, else held out from the test split (``validation_from="train"``
    carves it from train instead, for a model that never saw its train split). With a
    ``model``, a missing channel axis is added, shapes and labels are checked against it, and
    the task and metric are settled (``task``/``metric`` or inferred; see
    :func:`zenml_quant.conform.fit_to_model`), and ``targets`` (the run's
    :class:`~zenml_quant.targets.Targets` fields) and the PTQ ``budget`` are checked in that
    metric's units, so a target that cannot apply stops the run before any compression work.
    """
    source = source if source == "digits" else local_copy(source)
    data = _datasets.load_dataset(
        source,
        scale=scale,
        offset=offset,
        validation_fraction=validation_fraction,
        seed=seed,
        val_data=None if val_data is None else local_copy(val_data),
        validation_from=validation_from,  # type: ignore[arg-type]  # the loader checks it
        label_kind="values" if task == "regression" else "auto",
    )
    if model is not None:
        data = _conform.fit_to_model(
            model, data, task=task, metric=metric, higher_is_better=higher_is_better
        )
        if targets:
            Targets.from_dict(targets, metric=dataset_metric(data))
        if budget is not None:
            Targets(
                max_quality_drop=budget, relative_drop=relative_budget, metric=dataset_metric(data)
            )
    record_metadata(
        {
            "train": len(data.y_train),
            "validation": len(data.y_val),
            "test": len(data.y_test),
            "validation_source": data.validation_source,
            "classes": data.num_classes,
            "task": data.task,
            "metric": None if data.metric is None else data.metric["name"],
        }
    )
    return data


@step(
    name="zq_train_demo_model",
    output_materializers=KerasModelMaterializer,
    settings=STEP_SETTINGS,
)
def train_demo_model_step(
    dataset: LabeledDataset, epochs: int = 15, seed: int = 0
) -> Annotated[Any, "zq_trained_model"]:
    """Train the demo CNN on ``dataset``: the default trainer of ``retrain_and_compress``.

    Any step with the same inputs (a :class:`LabeledDataset`, ``epochs``) returning a Keras
    model can take its place.
    """
    from ...demo import train_demo_model

    return train_demo_model(dataset, epochs=epochs, seed=seed)

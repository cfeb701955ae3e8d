"""Labeled datasets: the six arrays in one ``.npz`` plus a JSON sidecar."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from typing import Any, ClassVar

import numpy as np
from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from ...inputs import describe_shape
from ...types import SPLITS, LabeledDataset, Preprocessing

_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
#: The plain (JSON) fields besides ``class_names`` and ``preprocessing``, e.g. where validation
#: came from. Read off the class so that a field added later round-trips without an edit here.
_PLAIN = tuple(
    f.name
    for f in fields(LabeledDataset)
    if f.name not in (*_ARRAYS, "class_names", "preprocessing")
)
_DATA_FILE = "data.npz"
_META_FILE = "dataset_meta.json"


class LabeledDatasetMaterializer(BaseMaterializer):
    """Stores :class:`LabeledDataset` without pickle (``allow_pickle=False`` on load)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (LabeledDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: LabeledDataset) -> None:
        with self.artifact_store.open(os.path.join(self.uri, _DATA_FILE), "wb") as f:
            np.savez(f, **{name: getattr(data, name) for name in _ARRAYS})
        meta = {
            "class_names": list(data.class_names),
            "preprocessing": asdict(data.preprocessing),
            **{name: getattr(data, name) for name in _PLAIN},
        }
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "w") as f:
            json.dump(meta, f)

    def load(self, data_type: type[Any]) -> LabeledDataset:
        with self.artifact_store.open(os.path.join(self.uri, _META_FILE), "r") as f:
            meta = json.load(f)
        with self.artifact_store.open(os.path.join(self.uri, _DATA_FILE), "rb") as f:
            with np.load(f, allow_pickle=False) as arrays:
                loaded = {name: arrays[name] for name in _ARRAYS}
        return LabeledDataset(
            **loaded,
            class_names=tuple(meta["class_names"]),
            preprocessing=Preprocessing(**meta["preprocessing"]),
            # Artifacts saved before a field existed lack it: it keeps its default (e.g. an
            # empty validation_source, "not recorded").
            **{name: meta[name] for name in _PLAIN if name in meta},
        )

    def save_visualizations(self, data: LabeledDataset) -> dict[str, VisualizationType]:
        lines = [f"### Labeled dataset from `{data.preprocessing.source}`", ""]
        if data.has_classes:
            lines += [
                f"Example shape `{describe_shape(data.x_train)}`, {data.num_classes} classes.",
                "",
                "| split | examples | " + " | ".join(data.class_names) + " |",
                "|---|---|" + "---|" * data.num_classes,
            ]
            for split in SPLITS:
                _, y = data.split(split)
                counts = np.bincount(y, minlength=data.num_classes)
                lines.append(
                    f"| {split} | {len(y)} | " + " | ".join(str(int(c)) for c in counts) + " |"
                )
        else:  # values (e.g. regression targets): their range says more than class counts
            label_shape = tuple(int(d) for d in data.y_train.shape[1:])
            lines += [
                f"Example shape `{describe_shape(data.x_train)}`, values of shape `{label_shape}`.",
                "",
                "| split | examples | min | mean | max |",
                "|---|---|---|---|---|",
            ]
            for split in SPLITS:
                _, y = data.split(split)
                stats = [f"{f(y):.4g}" if len(y) else "-" for f in (np.min, np.mean, np.max)]
                lines.append(f"| {split} | {len(y)} | " + " | ".join(stats) + " |")
        if data.validation_source:
            lines += ["", f"Splits: {data.validation_source}."]
        p = data.preprocessing
        lines += [
            "",
            (
                f"Preprocessing: x * {p.scale:.6g} + {p.offset:.6g} (applied: {p.applied}), "
                f"channel axis added: {p.channel_axis_added}."
            ),
        ]
        uri = os.path.join(self.uri, "summary.md")
        with self.artifact_store.open(uri, "w") as f:
            f.write("\n".join(lines) + "\n")
        return {uri: VisualizationType.MARKDOWN}

    def extract_metadata(self, data: LabeledDataset) -> dict[str, Any]:
        return {
            "train_examples": len(data.y_train),
            "validation_examples": len(data.y_val),
            "test_examples": len(data.y_test),
            "num_classes": data.num_classes,
            "labels": "classes" if data.has_classes else "values",
            "validation_source": data.validation_source,
            "example_shape": describe_shape(data.x_train),
        }

"""Labeled datasets: the six arrays in one ``.npz`` plus a JSON sidecar."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any, ClassVar

import numpy as np
from zenml.enums import ArtifactType, VisualizationType
from zenml.materializers.base_materializer import BaseMaterializer

from ...types import LabeledDataset, Preprocessing

_ARRAYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")
_DATA_FILE = "data.npz"
_META_FILE = "dataset_meta.json"


class LabeledDatasetMaterializer(BaseMaterializer):
    """Stores :class:`LabeledDataset` without pickle (``allow_pickle=False`` on load)."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (LabeledDataset,)
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[ArtifactType] = ArtifactType.DATA

    def save(self, data: LabeledDataset) -> None:
        with self.artifact_store.open(os.path.join(self.uri, _DATA_FILE), "wb") as f:
            np.savez(f, **{name: getattr(data, name) for name in _ARRAYS})
        meta = {"class_names": list(data.class_names), "preprocessing": asdict(data.preprocessing)}
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
        )

    def save_visualizations(self, data: LabeledDataset) -> dict[str, VisualizationType]:
        lines = [
            f"### Labeled dataset from `{data.preprocessing.source}`",
            "",
            f"Example shape `{data.sample_shape}`, {data.num_classes} classes.",
            "",
            "| split | examples | " + " | ".join(data.class_names) + " |",
            "|---|---|" + "---|" * data.num_classes,
        ]
        for split in ("train", "validation", "test"):
            _, y = data.split(split)
            counts = np.bincount(y, minlength=data.num_classes)
            lines.append(
                f"| {split} | {len(y)} | " + " | ".join(str(int(c)) for c in counts) + " |"
            )
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
            "example_shape": str(data.sample_shape),
        }

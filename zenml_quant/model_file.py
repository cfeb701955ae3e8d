"""What a model file says about itself, read without TensorFlow and without running its code.

The ``.keras`` zip's ``config.json`` and ``metadata.json``, an ``.h5``'s ``model_config``
attribute (h5py), or a SavedModel's ``keras_metadata.pb``. :mod:`zenml_quant.models` checks
this config before anything is deserialised; the CLI reads it to check options that name
layers before a run starts.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import InvalidModelError

__all__ = ["SUPPORTED_FORMATS", "has_batchnorm", "layer_names", "read_model_config"]

SUPPORTED_FORMATS = ".keras file, .h5/.hdf5 file, or a SavedModel directory (with saved_model.pb)"
_Config = dict[str, Any]


def read_model_config(path: Path) -> tuple[str, _Config]:
    """``(flavour, config)`` of the file at ``path``; runs no code from it."""
    if not path.exists():
        raise InvalidModelError(f"no model at {path}: the path does not exist")
    suffix = path.suffix
    if path.is_dir() and not (path / "saved_model.pb").is_file():
        raise InvalidModelError(
            f"{path} is a directory without saved_model.pb; supported: {SUPPORTED_FORMATS}"
        )
    if not path.is_dir() and suffix not in (".keras", ".h5", ".hdf5"):
        raise InvalidModelError(
            f"unsupported model format {path.name!r}; supported: {SUPPORTED_FORMATS}"
        )
    try:
        if path.is_dir():
            return "tf_keras", _savedmodel_config(path)
        if suffix == ".keras":
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                meta = json.loads(zf.read("metadata.json")) if "metadata.json" in names else {}
                config = json.loads(zf.read("config.json"))
            return _flavour_of(meta.get("keras_version")), config
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
        if raw is None:
            raise InvalidModelError(
                f"{path} holds no model config (a weights-only file?): build the model in code "
                "and call model.load_weights on it"
            )
        return _flavour_of(version), json.loads(raw)
    except InvalidModelError:
        raise
    except Exception as exc:  # noqa: BLE001 - zip, HDF5, JSON, protobuf: all a broken file
        raise InvalidModelError(
            f"could not read model file {path}: {_one_line(exc)} (corrupt, truncated, or not a "
            "Keras model)"
        ) from None


def _savedmodel_config(path: Path) -> _Config:
    meta_file = path / "keras_metadata.pb"
    if not meta_file.is_file():
        raise InvalidModelError(
            f"{path} is a SavedModel without keras_metadata.pb (written by tf.saved_model.save or "
            "Keras 3's model.export): it holds a serving graph, not a Keras model, and Keras 3 "
            "cannot load a SavedModel as a model; save the model with model.save('model.keras')"
        )
    from tf_keras.protobuf import saved_metadata_pb2

    metadata = saved_metadata_pb2.SavedMetadata()
    metadata.ParseFromString(meta_file.read_bytes())
    nodes = [json.loads(node.metadata) for node in metadata.nodes]
    root = next(n for node, n in zip(metadata.nodes, nodes) if node.node_path == "root")
    # The root keeps class_name and is_graph_network; the nodes let the walk see every layer.
    return {**root, "_nodes": nodes}


def _flavour_of(version: Any) -> str:
    if isinstance(version, bytes):  # older h5py hands back bytes attributes
        version = version.decode("utf-8")
    return "keras3" if str(version).startswith("3.") else "tf_keras"


def _walk(node: Any) -> Iterator[_Config]:
    """Every ``{"class_name": ...}`` dict in a config, nested models and wrappers included."""
    if isinstance(node, dict):
        if "class_name" in node:
            yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def input_layer_names(config: _Config) -> tuple[str, ...]:
    """The names of a Functional model's Input layers, in order (``()`` for a Sequential
    model or a config that does not say: one input)."""
    refs = config.get("config", {}).get("input_layers") if isinstance(config, dict) else None
    if not isinstance(refs, list) or not refs:
        return ()
    refs = [refs] if isinstance(refs[0], str) else refs  # one input: [name, node, index]
    return tuple(str(ref[0]) for ref in refs if isinstance(ref, list) and ref)


def has_batchnorm(config: _Config) -> bool:
    """Whether the config holds a BatchNormalization layer (nested models included)."""
    return any(
        node.get("class_name") in ("BatchNormalization", "SyncBatchNormalization")
        for node in _walk(config)
    )


def layer_names(config: _Config) -> list[str]:
    """The name of every layer the config holds (nested models' layers included)."""
    names = (node.get("config", {}).get("name") for node in _walk(config))
    return [n for n in names if isinstance(n, str)]


def _one_line(exc: BaseException) -> str:
    # Keras 3 puts the real reason after a dump of the whole config.
    text = str(exc).rsplit("Exception encountered:", 1)[-1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    first = first if len(first) <= 300 else first[:297] + "..."
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__

"""What steps need from ZenML at run time, guarded so ``step.entrypoint()`` works in tests."""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import version
from typing import Any

import numpy as np
from zenml import get_step_context, log_metadata
from zenml.config import DockerSettings
from zenml.config.base_settings import BaseSettings
from zenml.io import fileio
from zenml.utils import io_utils

#: The plugin's dependencies that its steps import (pyproject.toml's, less ZenML, which the image
#: already has, and the command line's and studio's click, fastapi and uvicorn).
STEP_LIBRARIES = (
    "tensorflow",
    "tf-keras",
    "tensorflow-model-optimization",
    "ai-edge-litert",
    "ai-edge-quantizer",
    "numpy",
    "pandas",
    "scikit-learn",
    "scipy",
    "pillow",
    "matplotlib",
    "rich",
    "pyyaml",
    "paramiko",
)


def image_requirements() -> list[str]:
    """The step libraries pinned to the versions running here.

    pyproject.toml takes ranges so the plugin can join a user's environment; an image built for a
    containerised orchestrator should run what the pipeline was tried with, so it gets exact pins.
    """
    return [f"{name}=={version(name)}" for name in STEP_LIBRARIES]


# A containerised orchestrator builds its image from these; the plugin's own code reaches the
# image with the project's source files.
DOCKER_SETTINGS = DockerSettings(requirements=image_requirements())
STEP_SETTINGS: dict[str, BaseSettings | dict[str, Any]] = {"docker": DOCKER_SETTINGS}


def _plain(value: Any) -> Any:
    # ZenML metadata accepts plain Python types only.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def record_metadata(metadata: dict[str, Any]) -> None:
    """``log_metadata`` for the running step; a no-op outside a pipeline run."""
    try:
        get_step_context()
    except RuntimeError:
        return
    log_metadata(metadata={k: _plain(v) for k, v in metadata.items() if v is not None})


def local_copy(path: str) -> str:
    """``path`` itself if it is on this machine, else a local copy of the remote file or folder.

    Lets the loading steps take ``s3://`` or ``gs://`` URIs when they run in a container.
    """
    if os.path.exists(path) or not fileio.exists(path):
        return path  # missing paths fall through to the core loader's clear error
    target = os.path.join(
        tempfile.mkdtemp(prefix="zenml-quant-"), os.path.basename(path.rstrip("/"))
    )
    if fileio.isdir(path):
        io_utils.copy_dir(path, target)
    else:
        fileio.copy(path, target)
    return target

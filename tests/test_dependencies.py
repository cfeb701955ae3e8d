"""The dependencies: ranges in pyproject.toml, exact pins of the running versions in images."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
#: Runtime dependencies the steps do not import (the command line and the studio).
NOT_IN_STEPS = {"zenml", "click", "fastapi", "uvicorn"}


def _dependencies() -> dict[str, Requirement]:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    return {Requirement(r).name: Requirement(r) for r in project["dependencies"]}


def test_the_stack_takes_patch_releases_and_the_installed_one_is_in_range():
    dependencies = _dependencies()
    for name in ("tensorflow", "tf-keras", "zenml", "ai-edge-litert", "ai-edge-quantizer"):
        spec = dependencies[name].specifier
        assert not any(s.operator == "==" for s in spec), f"{name} is pinned exactly: {spec}"
        installed = Version(version(name))
        assert installed in spec, f"{name} {installed} is outside {spec}"
        patch = Version(f"{installed.major}.{installed.minor}.{installed.micro + 1}")
        minor = Version(f"{installed.major}.{installed.minor + 1}.0")
        assert patch in spec and minor not in spec, f"{name}: {spec}"
    # tf-keras X.Y runs only with tensorflow X.Y: the two ranges must be the same minor.
    assert str(dependencies["tensorflow"].specifier) == str(dependencies["tf-keras"].specifier)


def test_images_pin_exactly_what_runs_here_for_every_step_library():
    from zenml_quant.integration._runtime import DOCKER_SETTINGS, STEP_LIBRARIES

    assert set(STEP_LIBRARIES) == set(_dependencies()) - NOT_IN_STEPS
    pins = {}
    for line in DOCKER_SETTINGS.requirements:
        name, pinned = re.fullmatch(r"([A-Za-z0-9_.-]+)==(\S+)", line).groups()
        pins[name] = pinned
    assert pins == {name: version(name) for name in STEP_LIBRARIES}

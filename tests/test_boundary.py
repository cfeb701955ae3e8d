"""The core never imports ZenML: only zenml_quant.integration may."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zenml_quant"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_core_modules_do_not_import_zenml():
    core = [p for p in PACKAGE.rglob("*.py") if "integration" not in p.relative_to(PACKAGE).parts]
    assert len(core) >= 8, "the core modules were not found"
    offenders = [str(p.relative_to(PACKAGE)) for p in core if "zenml" in _imports(p)]
    assert offenders == []


def test_only_one_module_sets_the_keras_flavour_variable():
    setters = [
        p.name
        for p in PACKAGE.rglob("*.py")
        for line in p.read_text().splitlines()
        if "environ" in line and "TF_USE_LEGACY_KERAS" in line
    ]
    assert setters == ["_keras_env.py"]


def test_the_package_and_the_cli_load_without_tensorflow_or_zenml():
    # The CLI checks its options before anything heavy loads: --help and a bad option are instant.
    import subprocess
    import sys

    code = (
        "import sys, os, zenml_quant, zenml_quant.integration.cli; "
        "import zenml_quant.integration.configs, zenml_quant.search.settings; "
        "import zenml_quant.integration.cli.run_config, zenml_quant.integration.steps.ids; "
        "assert os.environ['TF_USE_LEGACY_KERAS'] == '1'; "
        "heavy = [m for m in ('tensorflow', 'zenml', 'tf_keras') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_any_submodule_import_gets_tf_keras_as_tf_keras():
    # A fresh interpreter importing a module whose own imports pull in TensorFlow first.
    import subprocess
    import sys

    code = (
        "import sys, zenml_quant.convert, tensorflow as tf, tf_keras; "
        "assert tf.keras.Model is tf_keras.Model, tf.keras.Model; "
        "assert 'zenml' not in sys.modules, 'the core pulled in zenml'"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_gate_and_its_step_load_without_tensorflow_tfmot_or_matplotlib():
    # A user's own pipeline may use only the gate: it must not pay for the rest.
    import subprocess
    import sys

    code = (
        "import sys, zenml_quant.gate, zenml_quant.report.gate, "
        "zenml_quant.integration.steps.gate, zenml_quant.integration.steps.device; "
        "heavy = [m for m in ('tensorflow', 'tensorflow_model_optimization', 'matplotlib') "
        "if m in sys.modules]; assert not heavy, heavy"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_repository_project_re_exports_every_plugin_step_and_materializer():
    import importlib
    import sys

    from zenml_quant import integration

    root = str(PACKAGE.parent)
    sys.path.insert(0, root)
    try:
        steps = importlib.import_module("steps")
        materializers = importlib.import_module("materializers")
    finally:
        sys.path.remove(root)
    plugin = set(integration.__all__)
    shipped_materializers = {n for n in plugin if n.endswith("Materializer")}
    pipelines = {n for n in plugin if "pipeline" in n or n.endswith("retrain_and_compress")}
    configs = {n for n in plugin if n.endswith("Config")}
    assert plugin - shipped_materializers - pipelines - configs <= set(steps.__all__)
    assert shipped_materializers == set(materializers.__all__)


def test_no_public_name_is_defined_in_two_modules():
    """A class, function or constant defined at the top of two package modules is one name
    meaning two things (``Evaluation``, ``MODES``, ``Suggestion`` once were). Private names may
    repeat, and so may a ZenML step named after the core function it runs (the steps' modules
    are left out), and ``main``, the entry point of each script."""
    where: dict[str, list[str]] = {}
    steps = PACKAGE / "integration" / "steps"
    for path in PACKAGE.rglob("*.py"):
        if path.parent == steps:
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            for name in names:
                if not name.startswith("_") and name not in ("logger", "main", "__all__"):
                    where.setdefault(name, []).append(str(path.relative_to(PACKAGE)))
    twice = {name: files for name, files in where.items() if len(files) > 1}
    assert twice == {}


def test_every_plugin_step_and_step_id_carries_the_prefix():
    """Inside a user's larger pipeline the plugin's steps must stand out: ``zq_`` on every step
    name, and on every step id the pipelines give."""
    import re

    from zenml.steps import BaseStep

    from zenml_quant.integration import steps

    found = [getattr(steps, name) for name in steps.__all__]
    assert found and all(isinstance(step_, BaseStep) for step_ in found)
    unprefixed = [s.name for s in found if not s.name.startswith("zq_")]
    assert not unprefixed, unprefixed
    source = (PACKAGE / "integration" / "pipelines.py").read_text()
    ids = re.findall(r"\bid=f?\"([^\"]+)\"", source)
    assert ids and all(i.startswith("zq_") for i in ids), ids


def test_the_config_check_reads_every_steps_parameters_as_the_step_has_them():
    """The --config check reads step parameters from source (no import): they must be exactly
    what ZenML will see."""
    import inspect

    from zenml_quant.integration import steps
    from zenml_quant.integration.steps.ids import step_for_id, step_parameters

    for name in steps.__all__:
        step_ = getattr(steps, name)
        assert step_parameters(name) == list(inspect.signature(step_.entrypoint).parameters)
        assert step_for_id(step_.name) == name

"""The README's "add a step to your own pipeline" example, run exactly as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _example(name: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- example: {name} -->\n```python\n(.*?)```", text, re.S)
    assert match, f"README has no example {name!r}"
    return match.group(1)


def test_the_own_pipeline_example_runs_and_promotes_the_file_it_fetches(digits_model, tmp_path):
    digits_model.save(tmp_path / "model.keras")
    (tmp_path / "example.py").write_text(_example("own-pipeline"))
    (tmp_path / "fetch.py").write_text(_example("fetch-promoted"))
    env = {
        **os.environ,
        "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),  # a fresh store, as a new user has
        "ZENML_ANALYTICS_OPT_IN": "false",
    }
    env.pop("ZENML_CUSTOM_SOURCE_ROOT", None)
    for script in ("example.py", "fetch.py"):
        done = subprocess.run(
            [sys.executable, script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
    deployed = (tmp_path / "deployed.tflite").read_bytes()
    assert deployed[4:8] == b"TFL3"  # a TFLite flatbuffer ...
    check = (
        "from zenml.client import Client\n"
        "run = Client().get_pipeline('my_pipeline').runs[0]\n"
        "print(run.steps['zq_convert_to_tflite'].outputs['zq_tflite_model'][0].uri)\n"
    )
    uri = subprocess.run(
        [sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert uri.returncode == 0, uri.stderr[-2000:]
    converted = Path(uri.stdout.strip()) / "model.tflite"
    assert deployed == converted.read_bytes()  # ... the very file the gate chose

"""The process executor from any folder, and workers that die saying how.

Each test runs a script in a fresh temporary folder (no ``.zen`` anywhere above it), with a
fresh ZenML config and no ``ZENML_CUSTOM_SOURCE_ROOT``, the way a user runs a pipeline script.
The script defines a ZenML step at module level, as any pipeline script does: each spawned
worker imports the script again, and ZenML resolves the step's sources while it does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# The parts every script shares: a ZenML step with a materializer of the script's own (so its
# source must resolve on import) and a trial function defined in the script itself.
PRELUDE = """
import json, os, signal, sys
from typing import Any, ClassVar

from zenml import step
from zenml.materializers.base_materializer import BaseMaterializer

from zenml_quant.search.executors import ProcessPoolExecutor


class Box:
    pass


class BoxMaterializer(BaseMaterializer):
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (Box,)


@step(output_materializers=BoxMaterializer)
def make_box() -> Box:
    return Box()


def trial(context, task):
    op, arg = task
    if op == "square":
        return arg * arg
    if op == "die":  # say something on stderr, then die the way the OOM killer kills
        print(f"about to die: {arg}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    raise ValueError(op)


def on_error(task, message):
    return {"error": message}
"""


def _run_script(body: str, *, head: str = "") -> dict:
    """Run ``head + PRELUDE + body`` as a script in a fresh folder; what it printed as RESULT."""
    with tempfile.TemporaryDirectory(prefix="zq-anywhere-") as folder:
        script = Path(folder) / "my_pipeline.py"
        script.write_text(textwrap.dedent(head) + PRELUDE + textwrap.dedent(body))
        env = {k: v for k, v in os.environ.items() if k != "ZENML_CUSTOM_SOURCE_ROOT"}
        env.update(
            ZENML_CONFIG_PATH=str(Path(folder) / "zenml-config"),
            ZENML_ANALYTICS_OPT_IN="false",
            ZENML_LOGGING_VERBOSITY="WARN",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
        )
        done = subprocess.run(
            [sys.executable, script.name],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, f"exit {done.returncode}\n{done.stderr[-4000:]}"
    return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def from_a_fresh_folder():
    """One script, two pools: a batch on two workers, then a worker that dies mid-trial.

    One script for both, as every worker start imports ZenML and TensorFlow (seconds each).
    """
    return _run_script(
        """
        if __name__ == "__main__":
            with ProcessPoolExecutor(workers=2) as executor:
                executor.start(trial, None, on_error=on_error)
                batch = executor.map([("square", n) for n in range(6)])
            root_after = os.environ.get("ZENML_CUSTOM_SOURCE_ROOT")
            from zenml.client import Client

            repository = Client.find_repository()  # no `zenml init` above this folder
            with ProcessPoolExecutor(workers=1) as executor:
                executor.start(trial, None, on_error=on_error)
                dying = executor.map([("square", 3), ("die", "marker-7")])
            print("RESULT " + json.dumps(
                {"batch": batch, "root_after": root_after, "dying": dying,
                 "repository": repository and str(repository)}
            ))
        """
    )


def test_process_executor_evaluates_a_batch_from_a_fresh_folder(from_a_fresh_folder):
    assert from_a_fresh_folder["repository"] is None
    assert from_a_fresh_folder["batch"] == [0, 1, 4, 9, 16, 25]
    # Set for the workers only, not left behind in the caller.
    assert from_a_fresh_folder["root_after"] is None


def test_a_dying_worker_reports_its_signal_and_stderr(from_a_fresh_folder):
    first, died = from_a_fresh_folder["dying"]
    assert first == 9
    message = died["error"]
    assert "the worker process running this trial died" in message
    assert "killed by SIGKILL (signal 9)" in message and "out-of-memory killer" in message
    assert "about to die: marker-7" in message  # the worker's own last words


def test_a_worker_that_cannot_start_says_why():
    # The script fails only when a worker imports it again: the executor must say how the
    # workers ended and quote them, not guess at memory.
    out = _run_script(
        head="""
        if __name__ == "__mp_main__":
            raise RuntimeError("this script cannot be imported by a worker")
        """,
        body="""
        if __name__ == "__main__":
            with ProcessPoolExecutor(workers=1) as executor:
                executor.start(trial, None, on_error=on_error)
                try:
                    executor.warm_up(timeout=120)
                    message = None
                except RuntimeError as exc:
                    message = str(exc)
                results = executor.map([("square", 2)])
            print("RESULT " + json.dumps({"message": message, "results": results}))
        """,
    )
    message = out["message"]
    assert message is not None and "worker processes die while starting" in message
    assert "exited with code 1" in message
    assert "RuntimeError: this script cannot be imported by a worker" in message
    assert "out of memory" not in message
    (result,) = out["results"]
    assert "died twice" in result["error"] and "exited with code 1" in result["error"]
    assert "RuntimeError: this script cannot be imported by a worker" in result["error"]


def test_workers_get_the_callers_source_root_unless_one_is_set(monkeypatch):
    import zenml.utils.source_utils as source_utils

    from zenml_quant.search.executors import pool

    monkeypatch.delenv("ZENML_CUSTOM_SOURCE_ROOT", raising=False)
    monkeypatch.setattr(source_utils, "get_source_root", lambda: "/the/callers/root")
    assert pool._zenml_worker_env() == {"ZENML_CUSTOM_SOURCE_ROOT": "/the/callers/root"}

    monkeypatch.setenv("ZENML_CUSTOM_SOURCE_ROOT", "/set/by/the/user")
    assert pool._zenml_worker_env() == {}  # the workers inherit the user's

    def no_root() -> str:
        raise RuntimeError("Unable to determine source root")

    monkeypatch.delenv("ZENML_CUSTOM_SOURCE_ROOT")
    monkeypatch.setattr(source_utils, "get_source_root", no_root)
    assert pool._zenml_worker_env() == {}  # no main file here: the workers won't import it

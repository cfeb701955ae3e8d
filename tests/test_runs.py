"""Run tracking and store initialisation for the CLI, on real throwaway ZenML stores.

The cross-process tests run their ZenML work in subprocesses, each pointed at a fresh
``ZENML_CONFIG_PATH`` (so a fresh SQLite store): a process's ZenML configuration is fixed
once loaded, and a killed process is the whole point.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from zenml_quant.integration.runs import (
    RUNS_FOLDER,
    initialize_store,
    read_run_records,
    reap_stale_runs,
    runs_folder,
    tracked_run,
)

TESTS_DIR = Path(__file__).resolve().parent


def _env(config: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ZENML_CONFIG_PATH=str(config),
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_CUSTOM_SOURCE_ROOT=str(TESTS_DIR),  # where _runs_pipeline lives
        ZENML_LOGGING_VERBOSITY="WARN",
    )
    return env


def _script(tmp_path: Path, name: str, code: str) -> Path:
    path = tmp_path / name
    path.write_text(f"import sys\nsys.path.insert(0, {str(TESTS_DIR)!r})\n" + textwrap.dedent(code))
    return path


def _wait_for(path: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the process ended early ({process.returncode}):\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{path.name} did not appear within {timeout} s")
        time.sleep(0.05)


def test_a_killed_run_is_marked_failed_once(tmp_path):
    config = tmp_path / "zenml"
    marker = tmp_path / "step-running"
    name = "zq-test-killed-run"
    runner = _script(
        tmp_path,
        "runner.py",
        f"""
        import _runs_pipeline as rp
        from zenml_quant.integration.runs import initialize_store, tracked_run

        initialize_store()
        with tracked_run({name!r}):
            rp.sleepy_pipeline.with_options(run_name={name!r})(marker={str(marker)!r})
        """,
    )
    process = subprocess.Popen(
        [sys.executable, str(runner)],
        env=_env(config),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(marker, process, timeout=45)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL

    reaper = _script(
        tmp_path,
        "reaper.py",
        f"""
        import json
        from zenml.client import Client
        from zenml_quant.integration.runs import read_run_records, reap_stale_runs

        def state():
            run = Client().get_pipeline_run({name!r})
            return {{
                "run": str(run.status),
                "reason": run.get_body().status_reason,
                "finished": run.end_time is not None,
                "steps": {{n: str(s.status) for n, s in run.steps.items()}},
            }}

        out = {{"before": state(), "records": [r.pid for r in read_run_records()]}}
        out["first"] = reap_stale_runs()
        out["after"] = state()
        out["second"] = reap_stale_runs()
        out["records_after"] = len(read_run_records())
        print("RESULT " + json.dumps(out))
        """,
    )
    done = subprocess.run(
        [sys.executable, str(reaper)],
        env=_env(config),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    out = json.loads(line[len("RESULT ") :])
    assert out["before"]["run"] == "running"
    assert out["before"]["steps"] == {"mark_and_sleep": "running"}
    assert out["records"] == [process.pid]
    assert out["first"] == [
        f"run {name} was left running by process {process.pid}, which is gone: marked failed"
    ]
    assert out["after"]["run"] == "failed" and out["after"]["finished"]
    assert out["after"]["steps"] == {"mark_and_sleep": "failed"}
    assert f"process {process.pid}" in out["after"]["reason"]
    assert out["second"] == []
    assert out["records_after"] == 0


def test_commands_started_together_on_a_fresh_store_all_succeed(tmp_path):
    config = tmp_path / "zenml"
    go = tmp_path / "go"
    workers = 4
    script = _script(
        tmp_path,
        "starter.py",
        f"""
        import os, time
        from pathlib import Path
        from zenml.client import Client  # the slow import, before the start line
        from zenml_quant.integration.runs import initialize_store

        Path({str(tmp_path)!r}, "ready-" + sys.argv[1]).touch()
        while not Path({str(go)!r}).exists():
            time.sleep(0.005)
        initialize_store()
        print("PIPELINES", Client().list_pipelines().total)
        """,
    )
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), str(i)],
            env=_env(config),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(workers)
    ]
    try:
        for i, process in enumerate(processes):
            _wait_for(tmp_path / f"ready-{i}", process, timeout=60)
        go.touch()
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    for process, (out, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
        assert "PIPELINES 0" in out
    assert (config / "zenml-quant-store.lock").exists()


def test_records_of_live_processes_and_other_hosts_are_kept():
    initialize_store()
    with tracked_run("zq-test-live") as record:
        assert record.pid == os.getpid() and record.path is not None
        assert json.loads(record.path.read_text())["run_name"] == "zq-test-live"
        assert reap_stale_runs() == []
        assert record.path.exists()
        elsewhere = runs_folder() / "elsewhere.json"
        elsewhere.write_text(
            json.dumps(
                {
                    "run_name": "zq-test-elsewhere",
                    "pid": _dead_pid(),
                    "host": socket.gethostname() + "-another",
                    "started": "2026-01-01T00:00:00+00:00",
                }
            )
        )
        try:
            assert reap_stale_runs() == []
            assert elsewhere.exists()
        finally:
            elsewhere.unlink()
    assert not record.path.exists()
    assert [r.run_name for r in read_run_records()] == []


def test_record_is_removed_when_the_run_raises():
    with pytest.raises(RuntimeError, match="step failed"):
        with tracked_run("zq-test-raises") as record:
            raise RuntimeError("step failed")
    assert record.path is not None and not record.path.exists()
    assert runs_folder().name == RUNS_FOLDER


def test_dead_process_without_a_run_is_forgotten_quietly():
    initialize_store()
    stale = runs_folder() / "stale.json"
    stale.write_text(
        json.dumps(
            {
                "run_name": "zq-test-never-started",
                "pid": _dead_pid(),
                "host": socket.gethostname(),
                "started": "2026-01-01T00:00:00+00:00",
            }
        )
    )
    (runs_folder() / "garbage.json").write_text("{not json")
    try:
        assert reap_stale_runs() == []
        assert not stale.exists()
    finally:
        (runs_folder() / "garbage.json").unlink()


def test_tracked_run_needs_a_name():
    with pytest.raises(ValueError, match="run_name"):
        with tracked_run("  "):
            pass


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid

"""SSHBenchmarker against a real OpenSSH server on 127.0.0.1 (this machine is the "device").

The session fixture installs openssh-server when it is missing and we are root (CI); elsewhere
the tests FAIL saying how to install it, rather than skipping silently.
"""

from __future__ import annotations

import dataclasses
import logging
import stat
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sshd import SSHServer, free_port, start_sshd  # tests/sshd.py (tests/ is on sys.path)

from zenml_quant.benchmark import BenchmarkOptions, LocalBenchmarker, remote
from zenml_quant.benchmark.remote import SSHBenchmarker, SSHCredentials, SSHTarget
from zenml_quant.errors import DeviceSetupError, DeviceUnreachableError, InvalidOptionError

FAST = BenchmarkOptions(threads=(1,), warmup=2, min_runs=5, min_seconds=0.0, timeout_s=60.0)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> SSHServer:
    try:
        server = start_sshd(tmp_path_factory.mktemp("sshd"))
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def int8_model():
    """A tiny int8 MLP (16 features, 3 classes) and 40 labelled examples."""
    from zenml_quant._compat import tf_keras
    from zenml_quant.convert import convert_model

    tf_keras.utils.set_random_seed(1)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Input((16,)),
            tf_keras.layers.Dense(8, activation="relu"),
            tf_keras.layers.Dense(3),
        ]
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 16)).astype(np.float32)
    y = rng.integers(0, 3, size=40).astype(np.int64)
    return convert_model(model, "int8", representative_data=x), x, y


def target(server: SSHServer, **kw) -> SSHTarget:
    settings = dict(
        host="127.0.0.1",
        port=server.port,
        username=server.user,
        python=sys.executable,  # the device's python needs numpy + ai-edge-litert: the venv's
        workdir=str(server.directory / "work"),
        known_hosts=str(server.known_hosts),
        connect_timeout_s=5.0,
        retries=0,
    )
    return SSHTarget(**{**settings, **kw})


def bench(server: SSHServer, key: str | None = None, **kw) -> SSHBenchmarker:
    return SSHBenchmarker(
        target(server, **kw), SSHCredentials(private_key=key or server.client_key)
    )


def test_benchmark_over_ssh_matches_local_with_a_thread_sweep(sshd, int8_model):
    model, x, y = int8_model
    options = BenchmarkOptions(threads=(1, 2), warmup=2, min_runs=5, min_seconds=0.0)
    results = bench(sshd).run(model, options=options, x=x, y=y)

    assert [r.threads for r in results] == [1, 2]
    local = LocalBenchmarker().run(model, options=FAST, x=x, y=y)[0]
    for r in results:
        assert r.ok, r.error
        assert r.device == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
        assert r.runs >= 5 and r.warmup_runs == 2
        assert 0 < r.p50_ms <= r.p99_ms and r.mean_ms > 0 and r.load_ms > 0
        assert r.size_bytes == model.size_bytes
        assert r.peak_rss_bytes > 0 and r.arena_bytes > 0
        assert "ai_edge_litert" in r.runtime and r.machine
        assert r.n_samples == len(y)
        assert r.accuracy == local.accuracy  # same runtime, same data: identical predictions
    # The per-run directory is gone again; the workdir itself may stay.
    assert list((sshd.directory / "work").iterdir()) == []


def test_a_w4a8_file_runs_on_the_device_like_any_other(sshd, int8_model):
    from zenml_quant._compat import tf_keras
    from zenml_quant.convert import convert_model

    _, x, y = int8_model
    tf_keras.utils.set_random_seed(1)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Input((16,)),
            tf_keras.layers.Dense(8, name="hidden"),
            tf_keras.layers.Dense(3, name="out"),
        ]
    )
    w4a8 = convert_model(model, "w4a8", representative_data=x)
    assert dict(w4a8.precisions) == {"hidden": "int4", "out": "int4"}
    (result,) = bench(sshd).run(w4a8, options=FAST, x=x, y=y)
    local = LocalBenchmarker().run(w4a8, options=FAST, x=x, y=y)[0]
    assert result.ok, result.error
    assert result.size_bytes == w4a8.size_bytes and result.accuracy == local.accuracy


def test_a_model_that_fails_on_the_device_is_a_result(sshd, int8_model):
    model, _, _ = int8_model
    broken = dataclasses.replace(model, content=b"not a flatbuffer")
    (result,) = bench(sshd).run(broken, options=FAST)
    assert not result.ok
    assert "cannot load the model" in (result.error or "")


def test_changed_host_key_is_rejected(sshd, int8_model, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.other_host_key_line}\n")
    with pytest.raises(DeviceUnreachableError) as info:
        bench(sshd, known_hosts=str(known), retries=2).run(int8_model[0], options=FAST)
    message = str(info.value)
    assert "host key of 127.0.0.1:" in message and "does not match" in message
    assert f"ssh-keygen -R '[127.0.0.1]:{sshd.port}'" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in message


def test_unknown_host_key_is_rejected_with_its_fingerprint(sshd, int8_model, tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("")
    with pytest.raises(DeviceUnreachableError) as info:
        bench(sshd, known_hosts=str(known)).run(int8_model[0], options=FAST)
    message = str(info.value)
    assert "is not in known_hosts" in message and "ssh-ed25519 SHA256:" in message
    assert f"ssh-keyscan -p {sshd.port} 127.0.0.1 >> {known}" in message


def test_refused_connection_is_retried_then_unreachable(sshd, int8_model, caplog, monkeypatch):
    monkeypatch.setattr(remote, "RETRY_DELAY_S", 0.01)
    port = free_port()  # nobody listens there
    caplog.set_level(logging.INFO, logger=remote.__name__)
    with pytest.raises(DeviceUnreachableError) as info:
        bench(sshd, port=port, retries=1).run(int8_model[0], options=FAST)
    message = str(info.value)
    assert f"device {sshd.user}@127.0.0.1:{port} unreachable" in message
    assert "tried 2 times" in message
    attempts = [r for r in caplog.records if r.getMessage().startswith("connecting to ")]
    assert len(attempts) == 2
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 1


def test_wrong_key_fails_at_once_naming_the_user(sshd, int8_model, caplog):
    caplog.set_level(logging.INFO, logger=remote.__name__)
    with pytest.raises(DeviceUnreachableError) as info:
        bench(sshd, key=sshd.other_key, retries=2).run(int8_model[0], options=FAST)
    message = str(info.value)
    assert f"user {sshd.user!r}" in message and "secret" in message
    assert sum(r.getMessage().startswith("connecting to ") for r in caplog.records) == 1


def _wrapper(path: Path, body: str) -> str:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def test_device_without_tflite_runtime(sshd, int8_model, tmp_path):
    # numpy present, ai_edge_litert and tflite_runtime hidden: the runner's exit code 3.
    hide = (
        "import runpy, sys; sys.modules['ai_edge_litert'] = sys.modules['tflite_runtime'] = None; "
        "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    python = _wrapper(tmp_path / "python-no-litert", f'exec {sys.executable} -c "{hide}" "$@"')
    with pytest.raises(DeviceSetupError, match="has no TFLite runtime: pip install ai-edge-litert"):
        bench(sshd, python=python).run(int8_model[0], options=FAST)


def test_device_without_numpy(sshd, int8_model, tmp_path):
    # A bare system python: -I -S drops site-packages and PYTHONPATH, so numpy is missing too.
    python = _wrapper(tmp_path / "python-bare", f'exec {sys.executable} -I -S "$@"')
    with pytest.raises(DeviceSetupError, match="has no numpy") as info:
        bench(sshd, python=python).run(int8_model[0], options=FAST)
    assert "pip install ai-edge-litert" in str(info.value)


def test_missing_python(sshd, int8_model):
    with pytest.raises(DeviceSetupError, match="was not found"):
        bench(sshd, python="/nonexistent/python3").run(int8_model[0], options=FAST)


def _processes_in(directory: Path) -> list[str]:
    """Pids of processes whose working directory is under ``directory``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if str(Path(proc / "cwd").readlink()).startswith(str(directory)):
                found.append(proc.name)
        except OSError:
            pass
    return found


def test_timeout_stops_the_runner(sshd, int8_model):
    slow = BenchmarkOptions(warmup=0, min_runs=1, min_seconds=120.0)
    work = sshd.directory / "work"
    with pytest.raises(DeviceUnreachableError, match="timed out after 1.5 s"):
        bench(sshd, run_timeout_s=1.5).run(int8_model[0], options=slow)
    # The runner was killed on the device and its directory removed.
    deadline = time.monotonic() + 10
    while _processes_in(work) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_in(work) == []
    assert list(work.iterdir()) == []


def test_credentials_repr_hides_secrets():
    creds = SSHCredentials(private_key="-----BEGIN KEY-----SECRET", password="hunter2")
    for text in (repr(creds), str(creds), repr(SSHBenchmarker(SSHTarget("pi.local"), creds))):
        assert "SECRET" not in text and "hunter2" not in text
        assert "private_key=***" in text and "passphrase=None" in text


def test_bad_target_and_key_are_clear_errors():
    with pytest.raises(InvalidOptionError, match="port must be"):
        SSHTarget("pi.local", port=0)
    with pytest.raises(InvalidOptionError, match="retries must be"):
        SSHTarget("pi.local", retries=-1)
    with pytest.raises(InvalidOptionError, match="could not be read"):
        SSHCredentials(private_key="not a key").load_key()


def test_no_credentials_at_all_is_an_auth_error(sshd, int8_model, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.ssh/id_* keys
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)  # no agent
    benchmarker = SSHBenchmarker(target(sshd, retries=2), SSHCredentials())
    with pytest.raises(DeviceUnreachableError, match=f"user {sshd.user!r}.*secret"):
        benchmarker.run(int8_model[0], options=FAST)


def test_benchmark_step_reads_credentials_from_a_zenml_secret(sshd, digits_model, digits):
    import sys
    import uuid

    from zenml.client import Client

    from zenml_quant.convert import convert_model
    from zenml_quant.evaluate import evaluate_tflite
    from zenml_quant.integration import benchmark_on_device

    secret = f"zq-test-ssh-{uuid.uuid4().hex[:8]}"
    Client().create_secret(
        secret,
        values={"private_key": sshd.client_key, "known_hosts": sshd.known_hosts.read_text()},
    )
    int8 = convert_model(digits_model, "int8", representative_data=digits.x_train)
    results, page = benchmark_on_device.entrypoint(
        int8,
        digits,
        name="int8",
        device=f"ssh://{sshd.user}@127.0.0.1:{sshd.port}",
        ssh_secret=secret,
        ssh_python=sys.executable,
        min_runs=10,
        min_seconds=0.1,
        accuracy_split="test",
    )
    (result,) = results
    assert result.ok and result.device == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"
    assert result.accuracy == pytest.approx(evaluate_tflite(int8, digits, split="test").accuracy)
    assert "ssh://" in page


def test_benchmark_step_refuses_ssh_without_a_secret(int8_model):
    from zenml_quant.integration import benchmark_on_device

    with pytest.raises(InvalidOptionError, match="ZenML secret"):
        benchmark_on_device.entrypoint(int8_model[0], device="ssh://pi@127.0.0.1:22")
    with pytest.raises(InvalidOptionError, match="neither 'local'"):
        benchmark_on_device.entrypoint(
            int8_model[0], device="telnet://pi@host", ssh_secret="whatever"
        )

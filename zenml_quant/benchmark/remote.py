"""Benchmark a TFLite model on a device over SSH (e.g. a Raspberry Pi), with paramiko.

:class:`SSHBenchmarker` copies the model, :data:`~zenml_quant.benchmark.RUNNER_PATH` and, when
accuracy is asked for, the data (an ``.npz`` written without pickle) over SFTP into a fresh
directory under :attr:`SSHTarget.workdir`, runs ``<python> runner.py ...`` once per thread count,
reads the runner's JSON line and removes the directory again. The device needs Python 3 with
numpy and ``ai-edge-litert`` (or ``tflite-runtime`` on 32-bit ARM); nothing else.

Security decisions:

- Host keys are always verified against a ``known_hosts`` file (``RejectPolicy``): an unknown
  or changed key is a :class:`~zenml_quant.errors.DeviceUnreachableError` that says how to
  check and add the key; we never trust a key on first use.
- Credentials (:class:`SSHCredentials`) come from a ZenML secret in the step layer, never from a
  plain step parameter, and their ``repr`` never shows them. Without any credential, the SSH
  agent and the user's default keys (``~/.ssh/id_*``) are tried, as ``ssh`` would.

Failure handling: only connection-level failures (refused, timed out, reset) are retried,
``retries`` times, ~1 s apart; host-key and authentication failures fail at once. A device that
lacks Python, numpy or a TFLite runtime raises :class:`DeviceSetupError` saying what to install;
a model that fails on the device is a result with ``error`` set, as with the local benchmarker.
A run that exceeds its timeout is killed on the device and raises ``DeviceUnreachableError``.
"""

from __future__ import annotations

import io
import logging
import posixpath
import shlex
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import paramiko

from ..errors import DeviceSetupError, DeviceUnreachableError, InvalidOptionError
from ..types import TFLiteModel
from .local import RUNNER_PATH, check_data, result_from_runner, runner_args
from .types import BenchmarkOptions, BenchmarkResult

__all__ = ["SSHBenchmarker", "SSHCredentials", "SSHTarget"]

logger = logging.getLogger(__name__)

#: Seconds between connection attempts (times the attempt number: 1 s, 2 s, ...).
RETRY_DELAY_S = 1.0
#: The runner's exit code when neither ai-edge-litert nor tflite-runtime imports.
_NO_RUNTIME = 3
_RUNTIME_HINT = (
    "pip install ai-edge-litert numpy on it (or tflite-runtime on 32-bit ARM, where ai-edge-litert "
    "has no wheel), or point SSHTarget.python at an interpreter that has them"
)


@dataclass(frozen=True)
class SSHTarget:
    """Where to benchmark: an SSH server, the Python on it and a scratch directory.

    ``known_hosts`` is the file holding the device's host key (None: ``~/.ssh/known_hosts``).
    ``workdir`` may be relative to the login directory; each run uses a fresh subdirectory.
    ``run_timeout_s`` bounds one thread count's run (with ``BenchmarkOptions.timeout_s``: the
    smaller wins); ``retries`` extra connection attempts are made when the device cannot be
    reached (refused, timed out), never after a host-key or authentication failure.
    """

    host: str
    port: int = 22
    username: str = "pi"
    python: str = "python3"
    workdir: str = "/tmp/zenml-quant"
    known_hosts: str | None = None
    connect_timeout_s: float = 10.0
    run_timeout_s: float = 300.0
    retries: int = 2

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.host, str) or not self.host.strip():
            problems.append(f"host must be a host name or address, got {self.host!r}")
        if (
            not isinstance(self.port, int)
            or isinstance(self.port, bool)
            or not 0 < self.port < 65536
        ):
            problems.append(f"port must be an integer in 1..65535, got {self.port!r}")
        for name in ("username", "python", "workdir"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                problems.append(f"{name} must be a non-empty string, got {getattr(self, name)!r}")
        for name in ("connect_timeout_s", "run_timeout_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:  # NaN fails too
                problems.append(f"{name} must be a number of seconds > 0, got {value!r}")
        if not isinstance(self.retries, int) or isinstance(self.retries, bool) or self.retries < 0:
            problems.append(f"retries must be an integer >= 0, got {self.retries!r}")
        if problems:
            raise InvalidOptionError("Invalid SSHTarget: " + "; ".join(problems) + ".")

    @property
    def url(self) -> str:
        """``ssh://user@host:port``: the ``device`` of every result measured here."""
        return f"ssh://{self.username}@{self.host}:{self.port}"

    @property
    def known_hosts_path(self) -> Path:
        return Path(self.known_hosts or "~/.ssh/known_hosts").expanduser()

    @property
    def known_hosts_name(self) -> str:
        """How ``known_hosts`` names this host: ``host``, or ``[host]:port`` off port 22."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"


@dataclass(frozen=True, repr=False)
class SSHCredentials:
    """How to log in: a private key (PEM/OpenSSH text, maybe with a passphrase) and/or a password.

    Fill it from a ZenML secret, never from a plain step parameter (those are stored in clear
    with the run). ``repr`` and ``str`` say which fields are set, never their values. With no
    field set, the SSH agent and the default keys in ``~/.ssh`` are tried.
    """

    private_key: str | None = None
    password: str | None = None
    passphrase: str | None = None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={'***' if getattr(self, name) else None}"
            for name in ("private_key", "password", "passphrase")
        )
        return f"SSHCredentials({shown})"

    __str__ = __repr__

    @property
    def empty(self) -> bool:
        return not (self.private_key or self.password)

    def load_key(self) -> paramiko.PKey | None:
        """The private key as a paramiko key (ed25519, ECDSA or RSA); None when there is none."""
        if not self.private_key:
            return None
        failures = []
        for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
            try:
                return key_class.from_private_key(
                    io.StringIO(self.private_key), password=self.passphrase or None
                )
            except paramiko.PasswordRequiredException:
                raise InvalidOptionError(
                    "The SSH private key is encrypted: put its passphrase in the secret too "
                    "(SSHCredentials.passphrase)."
                ) from None
            except (paramiko.SSHException, ValueError) as exc:
                failures.append(f"{key_class.__name__}: {exc}")
        raise InvalidOptionError(
            "The SSH private key in the secret could not be read as an ed25519, ECDSA or RSA key "
            "(OpenSSH or PEM text, e.g. the whole content of ~/.ssh/id_ed25519); a wrong "
            f"passphrase also ends here. Tried {'; '.join(failures)}."
        )


class _UnknownHostKey(paramiko.SSHException):
    def __init__(self, hostname: str, key: paramiko.PKey) -> None:
        super().__init__(f"Server {hostname!r} not found in known_hosts")
        self.key = key


class _RejectUnknownHost(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, keeping the offered key so the message can show its fingerprint."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise _UnknownHostKey(hostname, key)


class SSHBenchmarker:
    """Runs the benchmark on a device over SSH (implements ``Benchmarker``).

    >>> bench = SSHBenchmarker(SSHTarget("raspberrypi.local"), SSHCredentials(private_key=pem))
    >>> results = bench.run(model, options=BenchmarkOptions(threads=(1, 4)), x=x_test, y=y_test)
    """

    def __init__(self, target: SSHTarget, credentials: SSHCredentials) -> None:
        if not isinstance(target, SSHTarget):
            raise InvalidOptionError(f"target must be an SSHTarget, got {type(target).__name__}.")
        if not isinstance(credentials, SSHCredentials):
            raise InvalidOptionError(
                f"credentials must be SSHCredentials, got {type(credentials).__name__}."
            )
        self.target = target
        self.credentials = credentials
        self.device = target.url

    def __repr__(self) -> str:
        return f"SSHBenchmarker({self.target!r}, {self.credentials!r})"

    def run(
        self,
        model: TFLiteModel,
        *,
        options: BenchmarkOptions,
        x: np.ndarray | None = None,
        y: np.ndarray | None = None,
    ) -> list[BenchmarkResult]:
        """One result per thread count in ``options.threads``.

        Raises :class:`DeviceUnreachableError` (connection, host key, login, timeout) and
        :class:`DeviceSetupError` (no Python / numpy / TFLite runtime on the device); a model
        that fails on the device is a result with ``error`` set.
        """
        check_data(x, y)
        timeout_s = min(options.timeout_s, self.target.run_timeout_s)
        with self._connect() as client:
            remote_dir = posixpath.join(self.target.workdir, f"run-{uuid.uuid4().hex[:12]}")
            try:
                self._upload(client, remote_dir, model, x, y)
                results = []
                for threads in options.threads:
                    args = runner_args(
                        "model.tflite", options, threads, None if x is None else "data.npz"
                    )
                    logger.info("benchmark on %s: %d thread(s)...", self.device, threads)
                    result = self._run_runner(client, remote_dir, args, threads, timeout_s)
                    logger.info("benchmark on %s: %s", self.device, _summary(result))
                    results.append(result)
                return results
            finally:
                self._cleanup(client, remote_dir)

    # -- connection ------------------------------------------------------------------------------

    @contextmanager
    def _connect(self) -> Iterator[paramiko.SSHClient]:
        t, attempts = self.target, self.target.retries + 1
        key = self.credentials.load_key()
        reason = ""
        for attempt in range(1, attempts + 1):
            client = paramiko.SSHClient()
            self._load_host_keys(client)
            client.set_missing_host_key_policy(_RejectUnknownHost())
            logger.info("connecting to %s (attempt %d/%d)", self.device, attempt, attempts)
            try:
                client.connect(
                    t.host,
                    port=t.port,
                    username=t.username,
                    pkey=key,
                    password=self.credentials.password or None,
                    passphrase=self.credentials.passphrase or None,
                    timeout=t.connect_timeout_s,
                    banner_timeout=t.connect_timeout_s,
                    auth_timeout=t.connect_timeout_s,
                    channel_timeout=t.connect_timeout_s,
                    allow_agent=self.credentials.empty,
                    look_for_keys=self.credentials.empty,
                )
            except _UnknownHostKey as exc:
                client.close()
                raise DeviceUnreachableError(self._unknown_host_message(exc.key)) from None
            except paramiko.BadHostKeyException as exc:
                client.close()
                raise DeviceUnreachableError(self._changed_host_message(exc)) from None
            except paramiko.AuthenticationException as exc:
                client.close()
                raise DeviceUnreachableError(self._auth_message(exc)) from None
            except (OSError, EOFError, paramiko.SSHException) as exc:  # refused, timeout, reset
                client.close()
                if "No authentication methods available" in str(exc):  # nothing to log in with
                    raise DeviceUnreachableError(self._auth_message(exc)) from None
                reason = _describe(exc)
                if attempt < attempts:
                    delay = RETRY_DELAY_S * attempt
                    logger.warning(
                        "%s: attempt %d/%d failed (%s); retrying in %g s",
                        self.device,
                        attempt,
                        attempts,
                        reason,
                        delay,
                    )
                    time.sleep(delay)
                continue
            try:
                yield client
            finally:
                client.close()
            return
        raise DeviceUnreachableError(
            f"device {t.username}@{t.host}:{t.port} unreachable: {reason} (tried {attempts} "
            f"time{'s' if attempts != 1 else ''}). Check that the device is on, on the network "
            f"and runs an SSH server on port {t.port} (`ssh -p {t.port} {t.username}@{t.host}` "
            f"from this machine), or raise SSHTarget.connect_timeout_s / retries."
        )

    def _load_host_keys(self, client: paramiko.SSHClient) -> None:
        path = self.target.known_hosts_path
        if self.target.known_hosts is None:
            client.load_system_host_keys()  # ~/.ssh/known_hosts; a missing file is no error
            return
        try:
            client.load_host_keys(str(path))
        except OSError as exc:
            raise InvalidOptionError(
                f"Cannot read the known_hosts file {path} ({exc.strerror or exc}): create it "
                f"with `ssh-keyscan -p {self.target.port} {self.target.host} > {path}` after "
                "checking the fingerprint on the device."
            ) from None

    def _keyscan_hint(self) -> str:
        t = self.target
        return (
            f"check the fingerprint on the device (`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub`"
            f" there), then add the key with `ssh-keyscan -p {t.port} {t.host} >> "
            f"{self.target.known_hosts_path}`"
        )

    def _unknown_host_message(self, key: paramiko.PKey) -> str:
        t = self.target
        return (
            f"The host key of {t.host}:{t.port} is not in known_hosts "
            f"({self.target.known_hosts_path}); the device offered {key.get_name()} "
            f"{key.fingerprint}. Host keys are never trusted on first use: {self._keyscan_hint()}."
        )

    def _changed_host_message(self, exc: paramiko.BadHostKeyException) -> str:
        t = self.target
        return (
            f"The host key of {t.host}:{t.port} does not match the one in known_hosts "
            f"({self.target.known_hosts_path}): expected {exc.expected_key.get_name()} "
            f"{exc.expected_key.fingerprint}, got {exc.key.get_name()} {exc.key.fingerprint}. "
            "Someone may be intercepting the connection. If the device was reinstalled or its "
            f"keys regenerated, remove the old entry (`ssh-keygen -R '{t.known_hosts_name}' -f "
            f"{self.target.known_hosts_path}`), {self._keyscan_hint()}."
        )

    def _auth_message(self, exc: Exception) -> str:
        t = self.target
        used = (
            "the SSH agent and ~/.ssh default keys"
            if self.credentials.empty
            else " and ".join(
                name
                for name, value in (
                    ("the private key", self.credentials.private_key),
                    ("the password", self.credentials.password),
                )
                if value
            )
        )
        return (
            f"Authentication as user {t.username!r} on {t.host}:{t.port} failed with {used} "
            f"({_describe(exc)}). Check the username and the SSH secret's private key / "
            f"password, and that the key's public half is in ~{t.username}/.ssh/authorized_keys "
            "on the device."
        )

    # -- remote work -----------------------------------------------------------------------------

    def _upload(
        self,
        client: paramiko.SSHClient,
        remote_dir: str,
        model: TFLiteModel,
        x: np.ndarray | None,
        y: np.ndarray | None,
    ) -> None:
        status, _, err = self._exec(client, f"mkdir -p {shlex.quote(remote_dir)}", 60.0)
        if status != 0:
            raise DeviceSetupError(
                f"Cannot create {remote_dir} on {self.device}: {err.strip()[-300:]}. Set "
                "SSHTarget.workdir to a directory the user may write."
            )
        files: list[tuple[str, bytes]] = [
            ("model.tflite", model.content),
            ("runner.py", RUNNER_PATH.read_bytes()),
        ]
        if x is not None and y is not None:
            buffer = io.BytesIO()
            np.savez(buffer, x=np.asarray(x), y=np.asarray(y).reshape(-1))
            files.append(("data.npz", buffer.getvalue()))
        try:
            with client.open_sftp() as sftp:
                for name, content in files:
                    sftp.putfo(io.BytesIO(content), posixpath.join(remote_dir, name))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceUnreachableError(
                f"Copying the benchmark files to {self.device}:{remote_dir} over SFTP failed: "
                f"{_describe(exc)}. Check that the SSH server has SFTP enabled (a `Subsystem "
                "sftp` line in sshd_config) and that the disk is not full."
            ) from None
        logger.info(
            "copied %s to %s on %s",
            ", ".join(f"{n} ({len(c)} B)" for n, c in files),
            remote_dir,
            self.device,
        )

    def _run_runner(
        self,
        client: paramiko.SSHClient,
        remote_dir: str,
        args: list[str],
        threads: int,
        timeout_s: float,
    ) -> BenchmarkResult:
        python = self.target.python
        command = (
            f"cd {shlex.quote(remote_dir)} && echo $$ > runner.pid && exec "
            f"{shlex.quote(python)} runner.py {' '.join(shlex.quote(a) for a in args)}"
        )
        status, stdout, stderr = self._exec(client, command, timeout_s, remote_dir=remote_dir)
        if status == _NO_RUNTIME:
            raise DeviceSetupError(
                f"The device {self.device} has no TFLite runtime: {_RUNTIME_HINT}."
            )
        if "No module named 'numpy'" in stderr:
            raise DeviceSetupError(
                f"The device's {python} has no numpy (and so no TFLite runtime either): "
                f"{_RUNTIME_HINT}."
            )
        if status == 127 or (status != 0 and not stdout.strip() and "not found" in stderr):
            raise DeviceSetupError(
                f"{python!r} was not found on {self.device} ({stderr.strip()[-200:]}): install "
                "Python 3 there or set SSHTarget.python to the interpreter's path."
            )
        if status != 0 and not stdout.strip() and 0 < status < 128:
            tail = " | ".join(stderr.strip().splitlines()[-3:])
            raise DeviceSetupError(
                f"The benchmark runner could not start on {self.device} with {python!r} (exit "
                f"{status}): {tail}. It needs Python >= 3.8 with numpy and ai-edge-litert."
            )
        # The runner's own JSON (also for a model that fails: exit 2), or a crash by signal.
        return result_from_runner(stdout, status, stderr, device=self.device, threads=threads)

    def _exec(
        self,
        client: paramiko.SSHClient,
        command: str,
        timeout_s: float,
        *,
        remote_dir: str | None = None,
    ) -> tuple[int, str, str]:
        """Exit status, stdout and stderr of ``command``; kills it after ``timeout_s``."""
        transport = client.get_transport()
        if transport is None or not transport.is_active():
            raise DeviceUnreachableError(f"The SSH connection to {self.device} was lost.")
        try:
            channel = transport.open_session(timeout=self.target.connect_timeout_s)
            channel.exec_command(command)
            out, err = bytearray(), bytearray()
            deadline = time.monotonic() + timeout_s
            while True:
                if channel.recv_ready():
                    out += channel.recv(65536)
                elif channel.recv_stderr_ready():
                    err += channel.recv_stderr(65536)
                elif channel.exit_status_ready() and channel.eof_received:
                    break
                elif channel.closed or not transport.is_active():
                    raise DeviceUnreachableError(
                        f"The SSH connection to {self.device} was lost while running the benchmark."
                    )
                elif time.monotonic() > deadline:
                    channel.close()
                    self._kill(client, remote_dir)
                    raise DeviceUnreachableError(
                        f"The benchmark on {self.device} timed out after {timeout_s:g} s and was "
                        "stopped. Raise SSHTarget.run_timeout_s / BenchmarkOptions.timeout_s, or "
                        "lower min_runs / min_seconds for a slow model."
                    )
                else:
                    time.sleep(0.005)
            status = channel.recv_exit_status()
            channel.close()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise DeviceUnreachableError(
                f"The SSH connection to {self.device} failed while running a command: "
                f"{_describe(exc)}."
            ) from None
        return status, out.decode(errors="replace"), err.decode(errors="replace")

    def _kill(self, client: paramiko.SSHClient, remote_dir: str | None) -> None:
        """Best effort: stop the runner whose pid is in ``remote_dir/runner.pid``."""
        if remote_dir is None:
            return
        pid_file = shlex.quote(posixpath.join(remote_dir, "runner.pid"))
        try:
            _, stdout, _ = client.exec_command(
                f"kill -9 $(cat {pid_file}) 2>/dev/null; true",
                timeout=self.target.connect_timeout_s,
            )
            stdout.channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            logger.warning("could not stop the runner on %s: %s", self.device, _describe(exc))

    def _cleanup(self, client: paramiko.SSHClient, remote_dir: str) -> None:
        """Best effort: remove this run's directory on the device."""
        try:
            _, stdout, _ = client.exec_command(
                f"rm -rf {shlex.quote(remote_dir)}", timeout=self.target.connect_timeout_s
            )
            stdout.channel.recv_exit_status()
        except (OSError, EOFError, paramiko.SSHException) as exc:
            logger.warning("could not remove %s on %s: %s", remote_dir, self.device, _describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError) and exc.errors:
        first = next(iter(exc.errors.values()))
        return f"{first.strerror or first}" if isinstance(first, OSError) else str(first)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return f"timed out ({exc})" if str(exc) else "timed out"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _summary(r: BenchmarkResult) -> str:
    if not r.ok:
        return f"{r.threads} thread(s): FAILED ({r.error})"
    return f"{r.threads} thread(s): p50 {r.p50_ms:.3f} ms over {r.runs} runs"

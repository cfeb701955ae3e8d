"""A throwaway OpenSSH server on 127.0.0.1 for the SSH benchmark tests.

:func:`ensure_sshd` finds ``/usr/sbin/sshd`` and, when it is missing and we run as root on a
Debian/Ubuntu machine (CI), installs Debian's ``openssh-server`` with apt-get.
:func:`start_sshd` runs it on a free unprivileged port, in the foreground, with its own host
key, authorized key, pid file and config in a temporary directory, so parallel pytest-xdist
workers each get their own server and nothing in ``/etc/ssh`` is used or changed.
"""

from __future__ import annotations

import getpass
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from system_packages import ensure_installed  # beside this file

SSHD = Path("/usr/sbin/sshd")
INSTALL_HINT = (
    "The SSH benchmark tests need an OpenSSH server binary at /usr/sbin/sshd (it is started "
    "on a private port; nothing in /etc/ssh is used). Install it with "
    "`sudo apt-get install -y --no-install-recommends openssh-server` (Debian/Ubuntu), "
    "`sudo dnf install openssh-server` (Fedora) or `brew install openssh` (macOS), then rerun."
)


def ensure_sshd() -> Path:
    """The sshd binary, installing openssh-server when missing; RuntimeError saying how if not."""
    ensure_installed([str(SSHD)], ["openssh-server"], INSTALL_HINT)
    return SSHD


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path, comment: str = "zq-test") -> str:
    """Generate an ed25519 key pair at ``path`` (+ ``.pub``); returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class SSHServer:
    """A running sshd and what a client needs to use it."""

    port: int
    user: str
    known_hosts: Path  # holds this server's host key under [127.0.0.1]:port
    client_key: str  # PEM (OpenSSH format) of a key the server accepts
    other_key: str  # PEM of a valid key the server does NOT accept
    other_host_key_line: str  # a host key that is not this server's ("ssh-ed25519 AAAA...")
    directory: Path
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def start_sshd(directory: Path, attempts: int = 3) -> SSHServer:
    """Start sshd in ``directory`` (a fresh temporary dir); waits until it answers."""
    sshd = ensure_sshd()
    directory.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:  # privilege separation dir, required when sshd runs as root
        Path("/run/sshd").mkdir(mode=0o755, parents=True, exist_ok=True)
    host_key = directory / "host_ed25519"
    host_pub = keygen(host_key, "zq-test-host")
    client_pub = keygen(directory / "client_ed25519", "zq-test-client")
    keygen(directory / "other_ed25519", "zq-test-other")
    other_host_pub = keygen(directory / "other_host_ed25519", "zq-test-other-host")
    authorized = directory / "authorized_keys"
    authorized.write_text(client_pub + "\n")
    authorized.chmod(0o600)
    log = directory / "sshd.log"
    last_error = ""
    for _ in range(attempts):  # another worker may grab the free port before sshd binds it
        port = free_port()
        config = directory / "sshd_config"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "ListenAddress 127.0.0.1",
                    f"HostKey {host_key}",
                    f"PidFile {directory / 'sshd.pid'}",
                    f"AuthorizedKeysFile {authorized}",
                    "PubkeyAuthentication yes",
                    "PasswordAuthentication no",
                    "KbdInteractiveAuthentication no",
                    "PermitRootLogin prohibit-password",
                    "StrictModes no",
                    "UsePAM no",
                    "UseDNS no",
                    "PrintMotd no",
                    "Subsystem sftp internal-sftp",
                    "LogLevel INFO",
                    "",
                ]
            )
        )
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(sshd), "-D", "-e", "-f", str(config), "-p", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        if _wait_for_port(port, process):
            (directory / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
            return SSHServer(
                port=port,
                user=getpass.getuser(),
                known_hosts=directory / "known_hosts",
                client_key=(directory / "client_ed25519").read_text(),
                other_key=(directory / "other_ed25519").read_text(),
                other_host_key_line=" ".join(other_host_pub.split()[:2]),
                directory=directory,
                process=process,
            )
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        last_error = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"sshd did not start (exit {process.returncode}):\n{last_error}")

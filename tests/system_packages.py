"""Install missing Debian packages the tests need (CI runs as root on a clean Debian machine)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

# Another pytest-xdist worker may be installing at the same moment: wait for dpkg's lock.
_LOCK = ["-o", "DPkg::Lock::Timeout=600"]


def apt_install(packages: Sequence[str]) -> str:
    """``apt-get install`` ``packages``; returns the log (raises CalledProcessError)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", *_LOCK, "install", "-y", "--no-install-recommends", *packages]
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:  # usually "Unable to locate package": no package lists yet
        subprocess.run(
            ["apt-get", *_LOCK, "update"],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=True,
        )
        done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    done.check_returncode()
    return done.stdout


def can_install() -> bool:
    """True when this process may install Debian packages itself (root, with apt-get)."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure_installed(paths: Sequence[str], packages: Sequence[str], hint: str) -> None:
    """Install ``packages`` unless every file in ``paths`` exists; RuntimeError with ``hint``."""
    if all(os.path.exists(p) for p in paths):
        return
    if not can_install():
        raise RuntimeError(hint)
    try:
        apt_install(packages)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log = getattr(exc, "stderr", "") or ""
        raise RuntimeError(f"{hint}\napt-get failed: {exc}\n{log[-2000:]}") from None
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise RuntimeError(f"{hint}\n({', '.join(packages)} installed but {missing} missing)")

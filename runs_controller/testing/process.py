"""Child processes that are always reaped: on stop, at interpreter exit, and when we are killed.

Three layers make sure no etcd or kube-apiserver outlives the test run that started it:
an explicit `stop()` (SIGTERM, then SIGKILL after a grace period), an `atexit` sweep of every
process still running, and PR_SET_PDEATHSIG so the kernel kills the child if this process dies
without running Python cleanup at all (SIGKILL, a crash).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import signal
import subprocess
import threading
import weakref
from collections import deque
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

_PR_SET_PDEATHSIG = 1
_live: weakref.WeakSet[ManagedProcess] = weakref.WeakSet()
_live_lock = threading.Lock()


def _libc_prctl() -> Callable[..., int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(name, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_prctl = _libc_prctl()


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: ask the kernel for SIGKILL when the parent dies."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class ManagedProcess:
    """One child process whose stdout and stderr go to a log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

    def start(self) -> None:
        """Start the process; its output is appended to `log_path`."""
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._log_file = self.log_path.open("ab")
        self._popen = subprocess.Popen(  # noqa: S603 - argv is built by the harness, no shell
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
            close_fds=True,
            # Own session: Ctrl-C in a terminal signals the whole foreground process group, and
            # the control plane must outlive the controller's graceful shutdown (lease release).
            start_new_session=True,
        )
        with _live_lock:
            _live.add(self)

    @property
    def pid(self) -> int | None:
        return None if self._popen is None else self._popen.pid

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._popen is None else self._popen.poll()

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM, wait up to `grace_seconds`, then SIGKILL; always waits for the exit status."""
        popen = self._popen
        if popen is not None:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    popen.send_signal(signal.SIGTERM)
                try:
                    popen.wait(timeout=grace_seconds)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        popen.kill()
                    popen.wait()
            self._popen = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        with _live_lock:
            _live.discard(self)

    def kill(self) -> None:
        """SIGKILL and nothing else (a crash, `kill -9`): no SIGTERM first that a graceful
        shutdown handler could act on."""
        popen = self._popen
        if popen is not None and popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                popen.kill()
        self.stop(grace_seconds=0.0)

    def log_tail(self, lines: int = 40) -> str:
        """The last `lines` lines of the log, for error messages."""
        try:
            with self.log_path.open("rb") as log:
                tail = deque(log, maxlen=lines)
        except FileNotFoundError:
            return "(no log written)"
        return b"".join(tail).decode("utf-8", errors="replace")

    def describe_exit(self) -> str:
        code = self.returncode
        if code is None:
            return f"{self.name} is running (pid {self.pid})"
        return f"{self.name} exited with code {code}"


@atexit.register
def _reap_all() -> None:
    with _live_lock:
        survivors = list(_live)
    for process in survivors:
        process.stop(grace_seconds=5.0)


def ensure_executable(path: Path) -> None:
    """Raise a clear error when `path` is not an executable file."""
    if not path.is_file() or not os.access(path, os.X_OK):
        raise FileNotFoundError(f"{path} is not an executable file")

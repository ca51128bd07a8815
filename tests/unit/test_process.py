from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from runs_controller.testing.process import ManagedProcess
from runs_controller.testing.wait import poll_until


def _gone(pid: int) -> bool:
    """True when the pid no longer names a live process (a zombie counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


def test_stop_terminates_and_reaps(tmp_path: Path) -> None:
    process = ManagedProcess("sleeper", ["sleep", "300"], tmp_path / "sleeper.log")
    process.start()
    pid = process.pid
    assert pid is not None
    assert _gone(pid) is False
    process.stop()
    assert process.returncode is None  # stop() forgets the handle after reaping it
    assert _gone(pid)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    script = "trap '' TERM; echo armed; exec sleep 300"
    process = ManagedProcess("stubborn", ["sh", "-c", script], tmp_path / "stubborn.log")
    process.start()
    poll_until(lambda: True if "armed" in process.log_tail() else None, timeout=10, what="trap")
    pid = process.pid
    assert pid is not None
    process.stop(grace_seconds=0.2)
    assert _gone(pid)


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    script = "for i in 1 2 3 4 5; do echo line$i; done"
    process = ManagedProcess("printer", ["sh", "-c", script], tmp_path / "printer.log")
    process.start()
    poll_until(lambda: process.returncode, timeout=10, what="printer to exit")
    assert process.describe_exit() == "printer exited with code 0"
    assert process.log_tail(2) == "line4\nline5\n"
    process.stop()


def _spawn_parent(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run a separate Python process that starts a ManagedProcess, then ends as `body` says."""
    program = textwrap.dedent(
        f"""
        import os, signal, sys
        from pathlib import Path
        from runs_controller.testing.process import ManagedProcess
        from runs_controller.testing.wait import poll_until
        log = Path({str(tmp_path / "child.log")!r})
        script = "trap 'echo got-term; exit 0' TERM; echo ready; while :; do sleep 0.05; done"
        child = ManagedProcess("child", ["sh", "-c", script], log)
        child.start()
        poll_until(lambda: True if "ready" in child.log_tail() else None, timeout=10, what="ready")
        print(child.pid, flush=True)
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )


def test_children_are_terminated_at_interpreter_exit(tmp_path: Path) -> None:
    result = _spawn_parent(tmp_path, "sys.exit(0)\n")
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.split()[0])
    assert _gone(pid)
    assert "got-term" in (tmp_path / "child.log").read_text()


def test_children_die_with_a_parent_that_is_killed(tmp_path: Path) -> None:
    result = _spawn_parent(tmp_path, "os.kill(os.getpid(), signal.SIGKILL)\n")
    assert result.returncode == -9, result.stderr
    pid = int(result.stdout.split()[0])
    poll_until(lambda: True if _gone(pid) else None, timeout=10, what=f"pid {pid} to die")
    # SIGKILL from the kernel: the child's TERM trap never ran.
    assert "got-term" not in (tmp_path / "child.log").read_text()

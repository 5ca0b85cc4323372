"""The processes the stack runs: launching one in its own session with its log, pid files,
whether a pid is alive and still ours, stopping (SIGTERM, then SIGKILL), log tails, the
configuration files written only on change, and the lock that serialises ``up``/``down``."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from runbook.guard import process_alive as pid_alive
from runbook.locks import file_lock
from runbook.settings import StackSettings

POLL_INTERVAL_S = 0.25
KILL_DEADLINE_S = 5.0
LOG_TAIL_LINES = 3

# Popen objects of the processes this Python process launched, by pid: kept so that they are
# reaped (no zombies, no ResourceWarning) and so that their exit codes can be reported.
_LAUNCHED: dict[int, subprocess.Popen[bytes]] = {}


def launch_process(
    command: list[str], log_path: Path, pid_path: Path, cwd: Path, environment: Mapping[str, str]
) -> int:
    """Start ``command`` in its own session, output appended to ``log_path``; write its pid."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=cwd,
            env={**os.environ, **environment},
        )
    _LAUNCHED[process.pid] = process
    pid_path.write_text(f"{process.pid}\n")
    return process.pid


def exit_code(pid: int) -> int | None:
    """Exit code of a process this Python process launched, once it has exited."""
    launched = _LAUNCHED.get(pid)
    return launched.returncode if launched is not None else None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def process_alive(pid: int) -> bool:
    """Whether the process lives (a zombie has exited already)."""
    launched = _LAUNCHED.get(pid)
    if launched is not None:
        return launched.poll() is None
    return pid_alive(pid)


def runs_program(pid: int, program: str) -> bool:
    """Whether the process runs ``program`` (directly, as a script's interpreter argument, or
    as a module: ``python -m program``)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc/self").exists()  # no /proc: trust the pid file
    if argv[1:3] == [b"-m", program.encode()]:
        return True
    return any(Path(arg.decode(errors="replace")).name == program for arg in argv[:2])


def terminate(pid: int, *, group: bool, deadline_s: float) -> str:
    """SIGTERM, then SIGKILL after the deadline; returns how the process ended."""
    _signal(pid, signal.SIGTERM, group=group)
    if _wait_for_exit(pid, deadline_s):
        return "stopped (SIGTERM)"
    _signal(pid, signal.SIGKILL, group=True)
    _wait_for_exit(pid, KILL_DEADLINE_S)
    return f"killed (SIGKILL after {deadline_s:.0f} s)"


def _signal(pid: int, signum: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # Our processes lead their own session; never signal a group that is not theirs.
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def _wait_for_exit(pid: int, deadline_s: float) -> bool:
    deadline = time.monotonic() + deadline_s
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL_INTERVAL_S)
    launched = _LAUNCHED.pop(pid, None)
    if launched is not None:
        launched.wait(timeout=KILL_DEADLINE_S)
    return True


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        with open(path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - 8192))
            text = log.read().decode(errors="replace")
    except OSError:
        return ""
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(line[:300] for line in tail)


def differs(path: Path, text: str) -> bool:
    try:
        return path.read_text() != text
    except FileNotFoundError:
        return True


def write_if_changed(path: Path, text: str) -> None:
    """Write only on change, so that a repeated ``up`` leaves every file as it was."""
    if not differs(path, text):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


# The longest an ``up`` holds the stack lock: a first one installs Docker, HAProxy and the
# rest and builds the base image (~5 min here, more on a slow mirror).
STACK_LOCK_TIMEOUT_S = 20 * 60


@contextlib.contextmanager
def stack_lock(settings: StackSettings,
               timeout_s: float = STACK_LOCK_TIMEOUT_S) -> Iterator[None]:
    """One ``up`` or ``down`` at a time per state directory (parallel test workers, CLI)."""
    path = settings.path("run", "stack.lock")
    with file_lock(path, timeout_s,
                   f"another `runbook stack up` or `down` still holds {path} after "
                   f"{timeout_s:.0f} s",
                   hint="wait for it to finish, or stop it if it is stuck"):
        yield

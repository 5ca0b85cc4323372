"""The prefork launcher and server (runbook/prefork.py) with a stand-in engine: real
processes, a real socket, real signals; Prefect's own engine runs through it in the e2e
test of the process worker (tests/e2e/test_ci_trigger.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runbook import prefork

ENGINE = '''
import os, signal, sys, time
VERSION = "{version}"
if __name__ == "__main__":
    print(f"pid={{os.getpid()}} ppid={{os.getppid()}} cwd={{os.getcwd()}} "
          f"argv={{sys.argv[1:]}} marker={{os.environ.get('MARKER')}} version={{VERSION}}",
          flush=True)
    print("on stderr", file=sys.stderr, flush=True)
    if os.environ.get("HANDLE_TERM"):
        def stop(*_):
            print("got SIGTERM", flush=True)
            sys.exit(143)
        signal.signal(signal.SIGTERM, stop)
    if os.environ.get("WAIT"):
        print("waiting", flush=True)
        time.sleep(60)
    sys.exit(int(os.environ.get("EXIT", "0")))
'''


class Engine:
    """A stand-in engine module of its own name, so each test has its own server."""

    def __init__(self, directory: Path) -> None:
        self.name = f"prefork_engine_{uuid.uuid4().hex[:8]}"
        self.directory = directory
        self.servers: set[int] = set()
        self.write("1")

    def write(self, version: str) -> None:
        path = self.directory / f"{self.name}.py"
        path.write_text(ENGINE.format(version=version))
        # A modification time clearly apart from the last one, whatever the clock's grain.
        stamp = time.time() + int(version)
        os.utime(path, (stamp, stamp))

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.directory),
                "RUNBOOK_PREFORK_ENGINE": self.name, "RUNBOOK_PREFORK_IDLE_S": "60", **extra}

    def start(self, *args: str, cwd: Path, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "runbook.prefork", "--preload", self.name, *args],
            cwd=cwd, env=self.env(**extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)

    def start_waiting(self, *, cwd: Path, **extra: str
                      ) -> tuple[subprocess.Popen[str], int, int]:
        """A run that waits until signalled: its launcher, its process and its server."""
        launcher = self.start(cwd=cwd, WAIT="1", **extra)
        assert launcher.stdout is not None
        first = launcher.stdout.readline()
        assert launcher.stdout.readline() == "waiting\n", first
        child = int(first.split("pid=")[1].split()[0])
        server = int(first.split("ppid=")[1].split()[0])
        self.servers.add(server)
        return launcher, child, server

    def run(self, *args: str, cwd: Path, **extra: str) -> tuple[int, dict[str, str], str]:
        launcher = self.start(*args, cwd=cwd, **extra)
        out, err = launcher.communicate(timeout=60)
        fields = dict(item.split("=", 1) for item in out.split("\n")[0].split(" ") if "=" in item)
        if fields and fields["pid"] != str(launcher.pid):
            self.servers.add(int(fields["ppid"]))
        return launcher.returncode, fields, err


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    made = Engine(tmp_path)
    yield made
    for pid in made.servers:
        with _gone_ok():
            os.kill(pid, signal.SIGTERM)


class _gone_ok:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is ProcessLookupError


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running, not gone and not a zombie (an orphan's reaping is up to pid 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_run_is_forked_with_the_launchers_streams_directory_environment_and_status(
    engine: Engine, tmp_path: Path,
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    code, first, err = engine.run("abc", cwd=workdir, MARKER="one", EXIT="3")
    assert code == 3
    assert first["cwd"] == str(workdir) and first["argv"] == "['abc']"
    assert first["marker"] == "one"
    assert "on stderr" in err
    assert len(engine.servers) == 1, "the run was not forked by a server"

    code, second, _ = engine.run(cwd=workdir, MARKER="two")
    assert code == 0 and second["marker"] == "two"
    assert second["ppid"] == first["ppid"], "the second run did not reuse the server"


def test_signals_reach_the_flow_run_and_the_launcher_ends_as_it_did(
    engine: Engine, tmp_path: Path,
) -> None:
    handled, _, _ = engine.start_waiting(cwd=tmp_path, HANDLE_TERM="1")
    handled.send_signal(signal.SIGTERM)
    out, _ = handled.communicate(timeout=30)
    assert "got SIGTERM" in out and handled.returncode == 143

    unhandled, _, _ = engine.start_waiting(cwd=tmp_path)
    unhandled.send_signal(signal.SIGTERM)
    unhandled.communicate(timeout=30)
    assert unhandled.returncode == -signal.SIGTERM


HELD_SIGNAL = """
import os, signal, subprocess, sys
from runbook import prefork
run = subprocess.Popen([sys.executable, "-c", {run!r}], stdout=subprocess.PIPE, text=True)
assert run.stdout.readline() == "ready\\n"
signals = prefork._Signals()
signals.install()
os.kill(os.getpid(), signal.SIGTERM)  # the request is out, the pid not yet known
assert signals.pending == [signal.SIGTERM], signals.pending
{then}
"""
RUN_HANDLING_TERM = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
print("ready", flush=True)
time.sleep(30)
"""


def _held_signal(then: str) -> subprocess.CompletedProcess[str]:
    code = HELD_SIGNAL.format(run=RUN_HANDLING_TERM, then=then)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)


def test_a_signal_before_the_pid_is_known_waits_for_it_then_reaches_the_run() -> None:
    # The window the test above hits only by chance: the run is forked (and may print)
    # before its pid reaches the launcher.
    done = _held_signal("signals.forward_to(run.pid)\nprint(run.wait(timeout=10))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "143"


def test_a_held_signal_with_no_run_to_forward_to_ends_the_launcher_by_that_signal() -> None:
    done = _held_signal("run.kill()\nsignals.die_of_pending()\nprint('survived')")
    assert done.returncode == -signal.SIGTERM, done.stderr
    assert "survived" not in done.stdout


def test_a_killed_launcher_leaves_no_flow_run_behind(engine: Engine, tmp_path: Path) -> None:
    launcher, child, _ = engine.start_waiting(cwd=tmp_path)
    assert child != launcher.pid
    launcher.kill()
    launcher.wait(timeout=10)
    _wait_for(lambda: not _alive(child))


def test_changed_code_runs_the_plain_engine_and_the_next_run_gets_a_new_server(
    engine: Engine, tmp_path: Path,
) -> None:
    _, before, _ = engine.run(cwd=tmp_path)
    assert before["version"] == "1"
    old_server = int(before["ppid"])
    engine.write("2")

    code, during, err = engine.run(cwd=tmp_path)
    assert code == 0 and during["version"] == "2"
    assert "the code changed since the server started" in err
    assert during["ppid"] != str(old_server), "the stale server forked it"
    _wait_for(lambda: not _alive(old_server))

    _, after, _ = engine.run(cwd=tmp_path)
    assert after["version"] == "2" and after["ppid"] not in (str(old_server), during["ppid"])
    assert int(after["ppid"]) in engine.servers


def test_launchers_at_once_start_one_server(engine: Engine, tmp_path: Path) -> None:
    launchers = [engine.start(cwd=tmp_path, MARKER=str(index)) for index in range(4)]
    parents = set()
    for launcher in launchers:
        out, _ = launcher.communicate(timeout=60)
        assert launcher.returncode == 0
        parents.add(out.split("ppid=")[1].split()[0])
    engine.servers.update(int(parent) for parent in parents)
    assert len(parents) == 1


def test_switched_off_it_is_the_plain_engine(engine: Engine, tmp_path: Path) -> None:
    launcher = engine.start(cwd=tmp_path, RUNBOOK_PREFORK="0")
    out, _ = launcher.communicate(timeout=60)
    assert f"pid={launcher.pid} " in out


def test_the_deployment_step_names_this_interpreter() -> None:
    command = prefork.flow_run_command()["command"]
    assert command.split() == [sys.executable, "-m", "runbook.prefork", "--preload", "flows"]


def test_a_stopped_server_lets_its_running_flow_run_finish(
    engine: Engine, tmp_path: Path,
) -> None:
    running, _, server = engine.start_waiting(cwd=tmp_path, HANDLE_TERM="1")
    os.kill(server, signal.SIGTERM)
    time.sleep(1.5)
    assert _alive(server), "the server left before its flow run ended"
    _, during, _ = engine.run(cwd=tmp_path)
    assert during["ppid"] != str(server), "a stopping server took a new run"
    running.send_signal(signal.SIGTERM)
    running.communicate(timeout=30)
    assert running.returncode == 143, "the exit status of the last run was lost"
    _wait_for(lambda: not _alive(server))

"""Flow runs of the process work pool without paying the imports each time.

Prefect's process worker starts every flow run as a new interpreter (``python -m
prefect.engine``) that imports Prefect and the flow's code again: 4.7 s of CPU on a quiet
machine for the pipeline, most of a release's orchestration CPU, and on two cores with eight
releases at once it queues every other release's stages (docs/known-gaps.md, "Scale").

This module is the work pool's ``command`` instead (prefect.yaml sets it through the
``flow_run_command`` deployment step). It is two small programs, the pattern of gunicorn's
``--preload``, Celery's prefork pool and Gradle's daemon:

- the **launcher** (``python -m runbook.prefork [--preload flows] [FLOW_RUN_ID]``), the
  process the worker starts, watches and signals. It imports nothing but the standard
  library. It hands its environment, working directory and standard streams to the server
  over a Unix socket, forwards every signal the worker sends to the flow run, and exits
  with the flow run's exit status (or dies of the same signal).
- the **server** (``python -m runbook.prefork serve``), started by the first launcher that
  finds none, detached, one per interpreter, checkout and user (an abstract socket named by
  those). It imports Prefect and the preloaded packages once, then forks one child per
  flow run. The child takes the launcher's streams, directory and environment, refreshes
  Prefect's settings from it and runs ``prefect.engine`` as ``__main__``: exactly what the
  plain command runs, minus the imports.

What keeps it safe:

- nothing is lost: whenever the server is not there, not ready within ``HELLO_TIMEOUT_S``,
  refuses, or ``RUNBOOK_PREFORK=0`` is set, the launcher becomes the plain engine
  (``exec``) before any flow code ran, so the run happens exactly once either way;
- no stale code: the server fingerprints every module file it loaded; when one changed, it
  refuses (the launcher runs the plain engine), stops accepting, and exits once its running
  children end, so the next launcher starts a server on the new code;
- fork safety: the server forks only while it has a single thread (checked after the
  imports); ``gc.freeze()`` keeps the shared pages shared;
- a launcher killed with SIGKILL (the worker's last resort) leaves no orphan: the server
  sees its connection close and terminates that child (SIGTERM, SIGKILL after
  ``ORPHAN_GRACE_S``);
- only the same user can connect (``SO_PEERCRED``); the server exits after ``IDLE_S``
  without work.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import importlib
import json
import os
import pkgutil
import selectors
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

ENGINE_MODULE = os.environ.get("RUNBOOK_PREFORK_ENGINE", "prefect.engine")
"""The module a child runs as ``__main__``; only tests name another one."""
MODULE = "runbook.prefork"  # not __name__: that is "__main__" when run with -m
DEFAULT_PRELOAD = ("flows",)
PREFECT_PRELOAD = ("prefect", "prefect.flow_engine", "prefect.flows", "prefect.deployments",
                   "prefect.task_engine", "prefect.client.orchestration")
HELLO_TIMEOUT_S = 120.0
"""How long a launcher waits for a server to be ready (its imports, on a busy machine)."""
CONNECT_TIMEOUT_S = 10.0
"""How long a launcher that started a server waits for it to bind its socket."""
PID_TIMEOUT_S = 30.0
"""How long a launcher waits for the fork once its request is sent."""
ORPHAN_GRACE_S = 10.0
IDLE_S = float(os.environ.get("RUNBOOK_PREFORK_IDLE_S", "900"))
FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT,
                     signal.SIGUSR1, signal.SIGUSR2)
MAX_REQUEST_BYTES = 4 << 20


class Unavailable(Exception):
    """The server cannot take this flow run; the launcher runs the plain engine."""


# ---------------------------------------------------------------------------------------
# The deployment step


def flow_run_command(preload: str = ",".join(DEFAULT_PRELOAD)) -> dict[str, str]:
    """A Prefect deployment step (prefect.yaml ``build``): the work pool command that
    starts flow runs through this module with the interpreter running ``prefect deploy``,
    which for a process pool is the one its worker runs (like Prefect's own
    ``set_working_directory``, the deploying checkout is the running one)."""
    return {"command": shlex.join([sys.executable, "-m", MODULE, "--preload", preload])}


# ---------------------------------------------------------------------------------------
# Shared by both sides


def address(preload: tuple[str, ...]) -> str:
    """The server's abstract socket: one per interpreter, checkout, user and preload list.
    Abstract names vanish with their process, so a dead server leaves nothing stale."""
    root = Path(__file__).resolve().parents[1]
    identity = "\0".join([sys.executable, str(root), str(os.getuid()), ENGINE_MODULE,
                          *preload])
    return "\0runbook-prefork-" + hashlib.sha256(identity.encode()).hexdigest()[:20]


def log_path() -> Path:
    directory = Path(tempfile.gettempdir()) / f"runbook-prefork-{os.getuid()}"
    directory.mkdir(mode=0o700, exist_ok=True)
    return directory / "server.log"


def _send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


class _Lines:
    """Newline-delimited JSON messages from a stream socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def read(self, deadline: float | None) -> dict[str, Any] | None:
        """The next message, or None at end of stream; TimeoutError past the deadline."""
        while b"\n" not in self.buffer:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                self.sock.settimeout(remaining)
            else:
                self.sock.settimeout(None)
            try:
                chunk = self.sock.recv(65536)
            except InterruptedError:
                continue
            except TimeoutError:
                raise
            except OSError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return json.loads(line)


# ---------------------------------------------------------------------------------------
# The launcher


def launch(preload: tuple[str, ...], engine_args: list[str]) -> NoReturn:
    """Run one flow run through the server, or as the plain engine when it cannot."""
    if os.environ.get("RUNBOOK_PREFORK", "1") == "0":
        _exec_engine(engine_args)
    try:
        sock = _connect(preload)
        lines = _Lines(sock)
        hello = lines.read(time.monotonic() + HELLO_TIMEOUT_S)
        if hello is None or not hello.get("ready"):
            raise Unavailable("the server closed before it was ready")
    except TimeoutError:
        _exec_engine(engine_args, "the server was not ready in time")
    except (Unavailable, OSError) as error:
        _exec_engine(engine_args, str(error))
    # From here the server may fork the flow run before its pid reaches us (the child
    # can even print first): a signal the worker sends now must wait for that pid, not
    # kill the launcher with its default action (the server would then stop the run as
    # orphaned, and the worker would read the wrong exit status).
    signals = _Signals()
    signals.install()
    request = {"argv": engine_args, "cwd": os.getcwd(), "env": dict(os.environ)}
    try:
        socket.send_fds(sock, [json.dumps(request).encode() + b"\n"], [0, 1, 2])
        reply = lines.read(time.monotonic() + PID_TIMEOUT_S)
    except TimeoutError:
        signals.die_of_pending()
        _exec_engine(engine_args, "the server did not start the flow run in time")
    except OSError as error:
        signals.die_of_pending()
        _exec_engine(engine_args, str(error))
    if reply is None:
        # The request was sent: the server may have forked. Running the engine here too
        # could run the flow twice, so this run ends (Prefect marks it crashed).
        signals.die_of_pending()
        print("runbook.prefork: the server closed after the request; not starting the "
              "flow run a second time", file=sys.stderr)
        sys.exit(70)
    if "refused" in reply:
        signals.die_of_pending()
        _exec_engine(engine_args, str(reply["refused"]))
    sys.exit(_supervise(lines, signals, int(reply["pid"])))


class _Signals:
    """The worker's signals, from the moment the request may start a flow run: held
    until the run's pid is known, then forwarded to it (a cancelled run that is just
    starting still gets its SIGTERM, and handles it as it would later)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.pending: list[int] = []

    def install(self) -> None:
        for signum in FORWARDED_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        if self.pid is None:
            self.pending.append(signum)
        else:
            _forward(self.pid, signum)

    def forward_to(self, pid: int) -> None:
        # The pid first: a signal arriving from here on goes straight to the run, so none
        # is appended to the list while it is being emptied.
        self.pid = pid
        held, self.pending = self.pending, []
        for signum in held:
            _forward(pid, signum)

    def die_of_pending(self) -> None:
        """No flow run of ours is running: end as the first held signal asked."""
        if self.pending:
            _die_of(self.pending[0])


def _forward(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _die_of(signum: int) -> NoReturn:
    """Die of the signal itself, so the worker reports what ended the run."""
    with contextlib.suppress(OSError, ValueError):
        signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    sys.exit(128 + signum)  # only if the signal is blocked: the shell's convention


def _connect(preload: tuple[str, ...]) -> socket.socket:
    name = address(preload)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(name)
        return sock
    except (ConnectionRefusedError, FileNotFoundError):
        pass
    _start_server(preload)
    deadline = time.monotonic() + CONNECT_TIMEOUT_S
    while True:
        try:
            sock.connect(name)
            return sock
        except (ConnectionRefusedError, FileNotFoundError) as error:
            if time.monotonic() > deadline:
                sock.close()
                raise Unavailable(f"no server after {CONNECT_TIMEOUT_S:.0f} s") from error
            time.sleep(0.05)


def _start_server(preload: tuple[str, ...]) -> None:
    """Start a detached server. Several launchers may do this at once: the first to bind
    the socket serves, the others exit at once (they bind before importing anything)."""
    with log_path().open("ab") as log:
        subprocess.Popen(  # our own interpreter and module, no shell
            [sys.executable, "-m", MODULE, "serve", "--preload", ",".join(preload)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            close_fds=True, cwd="/")


def _exec_engine(engine_args: list[str], reason: str | None = None) -> NoReturn:
    if reason is not None:
        print(f"runbook.prefork: {reason}; running the flow in a new interpreter",
              file=sys.stderr, flush=True)
    os.execv(sys.executable, [sys.executable, "-m", ENGINE_MODULE, *engine_args])  # noqa: S606


def _supervise(lines: _Lines, signals: _Signals, pid: int) -> int:
    """Forward signals to the flow run until the server reports its exit status."""
    signals.forward_to(pid)
    message = lines.read(None)
    if message is None or "exit" not in message:
        print("runbook.prefork: lost the server while the flow run was running",
              file=sys.stderr)
        return 70
    code = int(message["exit"])
    if code < 0:
        _die_of(-code)
    return code


# ---------------------------------------------------------------------------------------
# The server


@dataclass
class Request:
    """One flow run handed over by a launcher (what the child runs)."""

    argv: list[str]
    cwd: str
    env: dict[str, str]
    fds: list[int]


@dataclass
class _Connection:
    sock: socket.socket
    buffer: bytes = b""
    fds: list[int] = field(default_factory=list)
    child: int | None = None
    kill_at: float | None = None


class Server:
    """Accepts launchers, forks a child per flow run, reports each child's exit."""

    def __init__(self, listener: socket.socket, preload: tuple[str, ...]) -> None:
        self.listener: socket.socket | None = listener
        self.preload = preload
        self.selector = selectors.DefaultSelector()
        self.connections: dict[socket.socket, _Connection] = {}
        self.children: dict[int, _Connection] = {}
        self.fingerprint = ""
        self.last_work = time.monotonic()
        self.stop_requested = False
        self.wakeup_r, self.wakeup_w = os.pipe()

    def prepare(self) -> None:
        """The imports, once; then refuse to fork if they left a thread running."""
        for name in (*(PREFECT_PRELOAD if _runs_prefect() else ()), *self.preload):
            _import_tree(name)
        if threading.active_count() != 1:
            names = ", ".join(thread.name for thread in threading.enumerate())
            raise RuntimeError(f"the imports started threads ({names}); forking is unsafe")
        self.fingerprint = _fingerprint()
        gc.collect()
        gc.freeze()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # A flag, not the work: a handler runs between any two bytecodes of the loop.
        signal.signal(signal.SIGTERM, self._request_stop)
        assert self.listener is not None
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ)
        _log(f"ready: {len(sys.modules)} modules preloaded ({', '.join(self.preload)})")

    def run(self) -> Request | None:
        """Serve until idle or drained. Returns a Request in a forked child, None in the
        server when it is done."""
        while self.listener is not None or self.connections or self.children:
            for key, _ in self.selector.select(timeout=1.0):
                if key.fileobj is self.listener:
                    self._accept()
                elif key.fileobj == self.wakeup_r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wakeup_r, 4096)
                elif isinstance(key.data, _Connection):
                    request = self._read(key.data)
                    if request is not None:
                        return request
            if self.stop_requested:
                self.stop_accepting()
            self._reap()
            self._kill_orphans_past_grace()
            if (self.listener is not None and not self.connections and not self.children
                    and time.monotonic() - self.last_work > IDLE_S):
                _log(f"idle for {IDLE_S:.0f} s; exiting")
                self.stop_accepting()
        return None

    def _request_stop(self, _signum: int, _frame: object) -> None:
        self.stop_requested = True

    def stop_accepting(self) -> None:
        if self.listener is not None:
            self.selector.unregister(self.listener)
            self.listener.close()
            self.listener = None

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        uid = struct.unpack("3i", sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
        if uid != os.getuid():
            _log(f"refused a connection from uid {uid}")
            sock.close()
            return
        connection = _Connection(sock)
        self.connections[sock] = connection
        self.selector.register(sock, selectors.EVENT_READ, connection)
        self.last_work = time.monotonic()
        _send(sock, {"ready": True})

    def _read(self, connection: _Connection) -> Request | None:
        try:
            data, fds, _, _ = socket.recv_fds(connection.sock, 65536, 3)
        except OSError:
            data, fds = b"", []
        connection.fds.extend(fds)
        if not data:
            self._lost(connection)
            return None
        if connection.child is not None:
            return None  # a launcher sends one request; anything after it is ignored
        connection.buffer += data
        if b"\n" not in connection.buffer:
            if len(connection.buffer) > MAX_REQUEST_BYTES:
                self._close(connection)
            return None
        payload = json.loads(connection.buffer.split(b"\n", 1)[0])
        connection.buffer = b""
        return self._fork(connection, payload)

    def _fork(self, connection: _Connection, payload: dict[str, Any]) -> Request | None:
        if len(connection.fds) != 3:
            _send(connection.sock, {"refused": "the launcher's streams did not arrive"})
            self._close(connection)
            return None
        if self.listener is None:
            _send(connection.sock, {"refused": "the server is stopping"})
            self._close(connection)
            return None
        changed = _fingerprint() != self.fingerprint
        if changed:
            _log("code changed since the imports; refusing and stopping")
            _send(connection.sock, {"refused": "the code changed since the server started"})
            self._close(connection)
            self.stop_accepting()
            return None
        request = Request(argv=[str(arg) for arg in payload["argv"]], cwd=str(payload["cwd"]),
                          env={str(k): str(v) for k, v in payload["env"].items()},
                          fds=connection.fds)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            self._become_child(connection)
            return request
        for fd in connection.fds:
            os.close(fd)
        connection.fds = []
        connection.child = pid
        self.children[pid] = connection
        self.last_work = time.monotonic()
        _send(connection.sock, {"pid": pid})
        _log(f"flow run {request.env.get('PREFECT__FLOW_RUN_ID', '?')}: child {pid}")
        return None

    def _become_child(self, connection: _Connection) -> None:
        """Drop everything of the server: its sockets, its signal handling."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(signum, signal.SIG_DFL)
        self.selector.close()
        if self.listener is not None:
            self.listener.close()
        for other in self.connections.values():
            other.sock.close()  # its own too: the launcher must see EOF if the server dies
            for fd in other.fds if other is not connection else []:
                os.close(fd)
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)

    def _lost(self, connection: _Connection) -> None:
        """The launcher is gone. Its child, if it still runs, must not outlive it."""
        if connection.child is not None and connection.child in self.children:
            _log(f"launcher of child {connection.child} is gone; terminating it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(connection.child, signal.SIGTERM)
            connection.kill_at = time.monotonic() + ORPHAN_GRACE_S
            self.selector.unregister(connection.sock)
            self.connections.pop(connection.sock, None)
            connection.sock.close()
            return
        self._close(connection)

    def _close(self, connection: _Connection) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(connection.sock)
        self.connections.pop(connection.sock, None)
        connection.sock.close()
        for fd in connection.fds:
            os.close(fd)
        connection.fds = []

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            connection = self.children.pop(pid, None)
            if connection is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            _log(f"child {pid} exited with {code}")
            if connection.sock.fileno() != -1:
                with contextlib.suppress(OSError):
                    _send(connection.sock, {"exit": code})
            self._close(connection)
            self.last_work = time.monotonic()

    def _kill_orphans_past_grace(self) -> None:
        now = time.monotonic()
        for pid, connection in self.children.items():
            if connection.kill_at is not None and now > connection.kill_at:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                connection.kill_at = None


def _import_tree(name: str) -> None:
    """Import a module and, for a package, every module in it."""
    module = importlib.import_module(name)
    if name.split(".")[0] == "prefect":
        return  # Prefect's own packages: what the engine imports, not all of Prefect
    for info in pkgutil.walk_packages(getattr(module, "__path__", []), prefix=f"{name}."):
        importlib.import_module(info.name)


def _runs_prefect() -> bool:
    return ENGINE_MODULE.split(".")[0] == "prefect"


def _fingerprint() -> str:
    """Every loaded module file's size and modification time, hashed."""
    digest = hashlib.sha256()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue
        digest.update(f"{path}\0{stat.st_mtime_ns}\0{stat.st_size}\n".encode())
    return digest.hexdigest()


def _log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} [{os.getpid()}] {message}", flush=True)


def serve(preload: tuple[str, ...]) -> int:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(address(preload))
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            return 0  # another launcher's server won the race
        raise
    listener.listen(128)
    listener.setblocking(False)
    server = Server(listener, preload)
    try:
        server.prepare()
    except Exception:  # any import failure: launchers fall back, and the log says why
        _log("preloading failed; launchers run the plain engine:\n" + traceback.format_exc())
        return 1
    request = server.run()
    if request is None:
        _log("stopped")
        return 0
    return run_child(request)


def run_child(request: Request) -> int:
    """In the forked child: become the launcher's process, then run Prefect's engine."""
    os.setpgid(0, 0)
    for target, fd in zip((0, 1, 2), request.fds, strict=True):
        os.dup2(fd, target)
        os.close(fd)
    os.chdir(request.cwd)
    sys.path[0] = request.cwd  # as `python -m` started there would have it
    os.environ.clear()
    os.environ.update(request.env)
    if _runs_prefect():
        _refresh_prefect_settings()
    _apply_unbuffered()
    sys.modules.pop(ENGINE_MODULE, None)  # run as __main__, as `python -m` would
    import runpy

    sys.argv = [ENGINE_MODULE, *request.argv]
    runpy.run_module(ENGINE_MODULE, run_name="__main__", alter_sys=True)
    return 0


def _refresh_prefect_settings() -> None:
    """Prefect read its settings from the server's environment at import; the flow run's
    are the launcher's (API URL, logging level, job variables' env)."""
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging()


def _apply_unbuffered() -> None:
    """PYTHONUNBUFFERED acts at interpreter start; the child's streams are the server's."""
    if os.environ.get("PYTHONUNBUFFERED", "0") not in ("", "0"):
        for stream in (sys.stdout, sys.stderr):
            reconfigure = getattr(stream, "reconfigure", None)
            if reconfigure is not None:
                reconfigure(write_through=True)


def _parse(argv: list[str]) -> tuple[bool, tuple[str, ...], list[str]]:
    serve_mode = bool(argv) and argv[0] == "serve"
    rest = argv[1:] if serve_mode else argv
    preload = DEFAULT_PRELOAD
    if len(rest) >= 2 and rest[0] == "--preload":
        preload = tuple(name for name in rest[1].split(",") if name)
        rest = rest[2:]
    return serve_mode, preload, rest


def main(argv: list[str] | None = None) -> int:
    serve_mode, preload, rest = _parse(sys.argv[1:] if argv is None else argv)
    if serve_mode:
        return serve(preload)
    launch(preload, rest)


if __name__ == "__main__":
    sys.exit(main())

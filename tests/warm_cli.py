"""The installed ``mvarchive`` script, many times, without paying its start-up each time.

A command refused before any service starts spends most of its time starting Python and
importing torch, CompressAI, Prefect and MLflow (``mvarchive.codecs`` first, as the script
does, so CompressAI's point-cloud modules stay out). A
:class:`WarmCli` starts one interpreter with the script's environment, imports those once, and
runs each command as the script does (``sys.exit(main())`` with the command's ``argv``) in a
child forked from it, in the command's working directory, its stdout and stderr captured.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_SERVER = r"""
import atexit, json, os, sys, threading, time, traceback
from importlib.metadata import entry_points

replies = os.fdopen(os.dup(1), "w")  # the replies go here; what anything else prints, nowhere
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
main = entry_points(group="console_scripts")["mvarchive"].load()
import mvarchive.codecs, torch, prefect, mlflow, distributed, zarr, mvarchive.datasets  # warm-up only

def child(args, out, err):
    os.dup2(os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 1)
    os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    sys.argv = ["mvarchive", *args]
    try:
        code = main()  # what the script does: sys.exit(main())
    except SystemExit as stop:
        code = stop.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    threading._shutdown()  # then what the interpreter does on exit: join the threads, run the atexit hooks
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)

for line in sys.stdin:  # one batch per line: {"cwd", "logs", "parallel", "cases": {name: args}}
    batch = json.loads(line)
    pending, running, done = list(batch["cases"].items()), {}, {}
    while pending or running:
        while pending and len(running) < batch["parallel"]:
            name, args = pending.pop(0)
            out, err = (os.path.join(batch["logs"], f"{name}.{part}") for part in ("out", "err"))
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                os.chdir(batch["cwd"])
                child(args, out, err)
            running[pid] = (name, out, err, time.perf_counter())
        pid, status = os.wait()
        name, out, err, started = running.pop(pid)
        done[name] = {"returncode": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - started,
                      "stdout": open(out, encoding="utf-8", errors="replace").read(),
                      "stderr": open(err, encoding="utf-8", errors="replace").read()}
    replies.write(json.dumps(done) + "\n")
    replies.flush()
"""


@dataclass
class Run:
    """One finished command."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]

    def describe(self) -> str:
        tail = "\n".join(self.output.splitlines()[-40:])
        return f"mvarchive {' '.join(self.args)} -> {self.returncode} ({self.seconds:.0f} s)\n{tail}"


class WarmCli:
    """One warmed interpreter (environment ``env``) running commands of the installed script;
    use as a context manager. Not for commands that must prove the script starts at all: the
    suite runs the real script elsewhere."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self._logs = tempfile.TemporaryDirectory(prefix="warm-cli-")
        self._server: subprocess.Popen[str] | None = None
        self._batches = 0

    def __enter__(self) -> WarmCli:
        self._server = subprocess.Popen([sys.executable, "-c", _SERVER], env=self.env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        if self._server is not None:
            assert self._server.stdin is not None
            self._server.stdin.close()
            try:
                self._server.wait(60)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        self._logs.cleanup()

    def run_many(self, cases: dict[str, list[str]], cwd: Path, parallel: int = 1, timeout: float = 900
                 ) -> dict[str, Run]:
        """Commands (name -> arguments) from ``cwd``, ``parallel`` at a time; ``timeout`` for all."""
        server = self._server
        assert server is not None and server.stdin is not None and server.stdout is not None, "use it in a with block"
        self._batches += 1
        logs = Path(self._logs.name) / str(self._batches)
        logs.mkdir()
        batch = {"cwd": str(cwd), "logs": str(logs), "parallel": parallel, "cases": cases}
        server.stdin.write(json.dumps(batch) + "\n")
        server.stdin.flush()
        with selectors.DefaultSelector() as selector:
            selector.register(server.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                server.kill()
                raise TimeoutError(f"no answer within {timeout} s for {cases}")
        reply = server.stdout.readline()
        if not reply:
            raise RuntimeError(f"the warm interpreter exited ({server.poll()}) before answering")
        done = json.loads(reply)
        return {name: Run(cases[name], r["returncode"], r["stdout"], r["stderr"], r["seconds"])
                for name, r in done.items()}

    def run(self, args: list[str], cwd: Path, timeout: float = 900) -> Run:
        """One command from ``cwd``."""
        return self.run_many({"command": args}, cwd, timeout=timeout)["command"]

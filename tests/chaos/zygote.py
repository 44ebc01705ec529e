"""A warm process that forks CLI runs to be killed: ``python -m tests.chaos.zygote`` (chaos suite only).

Importing PyTorch and the studio costs seconds per process, so the kill rounds do not start a fresh
``python -m core`` each time: this process imports everything once, then for each request forks a
child that runs ``core.cli.main(argv)`` (the same entry point as ``python -m core``; nothing of the
studio is opened before the fork, so each child opens its own database connections) and, when asked,
``kill -9``s it after a delay. A real process dies at a random point of a real CLI command.

Protocol: one JSON object per line on stdin, one JSON answer per line on stdout.

* ``{"jobs": [{"argv": [...], "kill_after": 0.3 | null, "signal": "KILL" | "INT"}, ...]}``: forks every
  job at once (concurrent imports), signals each after its delay, waits for all; answers
  ``{"results": [{"rc": int | null, "killed": bool, "traceback": bool, "seconds": float}, ...]}``.
* ``{"quit": true}``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

JOB_TIMEOUT = 120.0  # seconds a forked command may take before it counts as hung


def _warm() -> None:
    import core.cli  # noqa: F401
    import core.inspect.service  # noqa: F401
    import core.model_versions  # noqa: F401
    import core.mvtec  # noqa: F401
    import core.reviews  # noqa: F401
    import core.training  # noqa: F401


def _child(argv: list[str], log: Path) -> None:
    """In the forked child: run the CLI command; stdout to /dev/null, stderr to ``log``; never return."""
    rc = 99
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(devnull, 1)
        os.dup2(err, 2)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)  # stacks of a hung command
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        from core.cli import main

        rc = main(argv)
    except KeyboardInterrupt:  # as core/__main__.py: Ctrl-C before the command's own handler
        rc = 130
    except SystemExit as exit_:
        rc = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001
        traceback.print_exc()
        rc = 98
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(rc)


def _run(jobs: list[dict], logs: Path) -> list[dict]:
    started = time.monotonic()
    children = []
    for index, job in enumerate(jobs):
        log = logs / f"job-{os.getpid()}-{time.monotonic_ns()}-{index}.log"
        # a signal sent right at fork time would interrupt Python's at-fork hooks in the child (seen: a
        # logging lock left held, then a hang); blocked here, it is delivered once the child has its handlers
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        pid = os.fork()
        if pid == 0:
            _child(job["argv"], log)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
        children.append((pid, job, log))
    pending = sorted(((job.get("kill_after"), pid, job.get("signal", "KILL")) for pid, job, _ in children
                      if job.get("kill_after") is not None), key=lambda item: item[0])
    status: dict[int, int] = {}
    for delay, pid, name in pending:
        wait = started + delay - time.monotonic()
        while wait > 0 and pid not in status:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status[pid] = code
                break
            time.sleep(min(wait, 0.005))
            wait = started + delay - time.monotonic()
        if pid not in status:
            os.kill(pid, getattr(signal, f"SIG{name}"))
    results = []
    deadline = time.monotonic() + JOB_TIMEOUT
    for pid, _, log in children:
        code = status.get(pid)
        hung = False
        while code is None:
            done, code_now = os.waitpid(pid, os.WNOHANG)
            if done:
                code = code_now
            elif time.monotonic() > deadline:  # a hang is a defect: reported (with its stacks), then ended
                hung = True
                os.kill(pid, signal.SIGUSR1)
                time.sleep(1.0)
                os.kill(pid, signal.SIGKILL)
                _, code = os.waitpid(pid, 0)
            else:
                time.sleep(0.005)
        text = log.read_text(errors="replace") if log.exists() else ""
        log.unlink(missing_ok=True)
        killed = os.WIFSIGNALED(code)
        results.append({"rc": None if killed else os.WEXITSTATUS(code), "killed": killed and not hung, "hung": hung,
                        "traceback": "Traceback" in text,
                        "stderr": text[-6000:] if "Traceback" in text or hung else "",
                        "seconds": round(time.monotonic() - started, 3)})
    return results


def main() -> None:
    logs = Path(os.environ["CHAOS_LOGS"])
    logs.mkdir(parents=True, exist_ok=True)
    _warm()
    threads = len(os.listdir("/proc/self/task")) if Path("/proc/self/task").is_dir() else 1
    if threads != 1:  # forking a process with threads can leave their locks held in the child
        print(json.dumps({"error": f"the zygote has {threads} threads; it must have one to fork safely"}), flush=True)
        return
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        print(json.dumps({"results": _run(request["jobs"], logs)}), flush=True)


if __name__ == "__main__":
    main()

"""Runs that kill themselves with SIGKILL (no cleanup at all) at a chosen file write, for tests/test_reliability.py.

``python tests/kill_at.py JOBS.json`` where JOBS is a list of ``{"config": PATH, "file": NAME, "nth": K,
"when": "before" | "after"}``: after importing the library once, one forked child per job trains the
run ``config`` describes and SIGKILLs itself just before (the new file is complete under its temporary
name, not yet in place) or just after the K-th atomic replace of ``NAME`` in its run folder. Every file
of a run folder is written that way, so these points cover "a kill at any moment" between writes.
Prints one JSON list: per job, the signal that ended the child (9) or its exit status if it was not killed.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from convnext_report.config import load_config
from convnext_report.training import train


def _kill_at(file: str, nth: int, when: str) -> None:
    """Make the K-th ``os.replace`` onto a file named ``file`` the last thing this process does."""
    real, seen = os.replace, []

    def replace(src: str, dst: str) -> None:
        hit = Path(dst).name == file and len(seen) + 1 == nth
        if Path(dst).name == file:
            seen.append(dst)
        if hit and when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

    os.replace = replace


def main(jobs_file: str) -> None:
    results = []
    for job in json.loads(Path(jobs_file).read_text()):
        pid = os.fork()  # this process only imported: no threads yet, so forking is safe
        if pid == 0:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
            _kill_at(job["file"], job["nth"], job["when"])
            try:
                train(load_config(job["config"]))
            finally:
                os._exit(0)  # reached only when the kill point never came
        _, status = os.waitpid(pid, 0)
        results.append(os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1])

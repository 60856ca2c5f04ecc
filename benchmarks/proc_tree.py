"""Run a command and measure its whole process tree from /proc: wall and CPU seconds, peak PSS.

Used by ``scale_rehearsal.py``. Memory is the sum of every descendant's proportional set
size (shared pages split between their users, so Ray's workers and its object store count
once, not once per process), sampled twice a second; Linux only.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])  # the name may hold spaces
        kids.setdefault(ppid, []).append(int(d))
    return kids


def _pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages split between their users); RSS as a fallback."""
    with contextlib.suppress(OSError):  # no smaps_rollup (old kernel, process gone): RSS below
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (its own, not its children's), in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    f = stat[stat.rindex(")") + 2:].split()
    return int(f[11]) + int(f[12])


def tree_sample(root: int, cpu: dict[int, int]) -> int:
    """PSS summed over ``root`` and all its descendants now; records each one's CPU ticks in ``cpu``."""
    kids, todo, total = _children(), [root], 0
    while todo:
        pid = todo.pop()
        total += _pss(pid)
        cpu[pid] = max(cpu.get(pid, 0), _cpu_ticks(pid))
        todo.extend(kids.get(pid, ()))
    return total


def run_phase(cmd: list[str], log: Path, threads: int = 0, interval: float = 0.5) -> dict:
    """Run ``cmd`` niced; its wall seconds, CPU seconds and peak process-tree memory. Fails loudly.

    The machine is shared, so wall time depends on what else runs; CPU seconds of the tree do
    much less. They are the larger of what wait4 reports (the child and the descendants it
    reaped) and the sum of each descendant's last sampled CPU time (Ray's workers are reaped
    by the raylet), so they are a lower bound, short-lived processes between samples missed."""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    if threads:  # on a loaded machine two spinning OpenMP threads burn CPU waiting for each other
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    t0 = time.perf_counter()
    peak, cpu, done = [0], {}, threading.Event()
    with open(log, "w") as out:
        proc = subprocess.Popen(["nice", "-n", "15", *cmd], stdout=out, stderr=subprocess.STDOUT, env=env)

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], tree_sample(proc.pid, cpu))
                done.wait(interval)

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        th.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"scale_rehearsal: {' '.join(cmd)} failed (exit {proc.returncode}); see {log}:\n"
                         + "\n".join(log.read_text().splitlines()[-15:]))
    sampled = sum(cpu.values()) / os.sysconf("SC_CLK_TCK")
    return {"seconds": seconds, "cpu_seconds": max(usage.ru_utime + usage.ru_stime, sampled), "peak_bytes": peak[0]}

"""How many CPU cores a training process may use, and its thread policy (``trainer.threads=null``).

torch's default intra-op thread count is the machine's core count, whatever share of it the process is given: a
container limited by its cgroup (``cpu.max``), a process pinned to some cores (``taskset``, SLURM's
``--cpus-per-task``), or a machine whose cores the data-loader workers of this run need too. Its OpenMP threads then
wait on each other for cores that are busy, and a step takes several times longer (a 2-core machine running the
quickstart beside another job: 119-368 s/kimg with torch's default, 22 s/kimg with one thread; issue 30).

The policy here: the cores free to this process (:func:`available_cores`: the CPU affinity mask, capped by the cgroup
v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us`` quota), shared by the training processes of this node, minus one core per
loader worker, and no more than the cores idle right now (:func:`idle_cores`: another job's busy core is not
free, an idle machine's is); at least one thread. ``trainer.threads=N`` overrides it; ``OMP_NUM_THREADS`` set in
the environment is respected too (it is the user's choice). No file here is read at import time; nothing imports torch.
"""

from __future__ import annotations

import math
import os

__all__ = ["available_cores", "cgroup_cpu_limit", "idle_cores", "thread_policy"]

#: Where the cgroup CPU quota is read (v2 first, then v1); tests point this at their own files.
CGROUP_FILES = ("/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/cpu/cpu.cfs_quota_us")


def cgroup_cpu_limit(files: tuple[str, ...] = CGROUP_FILES) -> float | None:
    """The CPU quota of this process's cgroup in cores (``quota / period``), or None when there is none.

    cgroup v2: ``cpu.max`` holds ``"<quota> <period>"`` in microseconds or ``"max <period>"``; v1:
    ``cpu.cfs_quota_us`` (``-1`` = none) next to ``cpu.cfs_period_us``. Unreadable or malformed files count as no
    limit.
    """
    for path in files:
        try:
            with open(path) as f:
                text = f.read().split()
        except OSError:
            continue
        try:
            if path.endswith("cpu.max"):
                if not text or text[0] == "max":
                    return None
                quota, period = float(text[0]), float(text[1]) if len(text) > 1 else 100000.0
            else:
                quota = float(text[0])
                if quota <= 0:
                    return None
                with open(os.path.join(os.path.dirname(path), "cpu.cfs_period_us")) as f:
                    period = float(f.read().split()[0])
        except (ValueError, IndexError, OSError):
            return None
        return quota / period if period > 0 else None
    return None


def available_cores(files: tuple[str, ...] = CGROUP_FILES) -> int:
    """Cores this process may run on: the size of its CPU affinity mask (``os.sched_getaffinity``; else
    ``os.cpu_count()``), capped by the cgroup quota rounded up (a quota of 1.5 cores lets 2 threads run). >= 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = cgroup_cpu_limit(files)
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit - 1e-9)))
    return max(1, cores)


def idle_cores(seconds: float = 0.25, stat: str = "/proc/stat") -> float | None:
    """How many of this process's cores were idle over the next ``seconds`` (``/proc/stat``'s idle + iowait time of
    the CPUs in the affinity mask, summed over them); None where that cannot be read (not Linux)."""
    import time

    try:
        cpus = {f"cpu{i}" for i in os.sched_getaffinity(0)}
    except (AttributeError, OSError):
        return None

    def sample() -> dict[str, tuple[int, int]]:
        out = {}
        with open(stat) as f:
            for line in f:
                parts = line.split()
                if parts and parts[0] in cpus:
                    vals = [int(v) for v in parts[1:9]]
                    out[parts[0]] = (vals[3] + vals[4], sum(vals))
        return out

    try:
        a = sample()
        time.sleep(seconds)
        b = sample()
    except (OSError, ValueError, IndexError):
        return None
    idle = 0.0
    for cpu, (i1, t1) in b.items():
        i0, t0 = a.get(cpu, (i1, t1))
        if t1 > t0:
            idle += (i1 - i0) / (t1 - t0)
    return idle if b else None


def thread_policy(threads: int | None, workers: int, processes: int = 1, cores: int | None = None,
                  environ: dict[str, str] | None = None, idle: float | None = None) -> tuple[int | None, str]:
    """The intra-op thread count for ``torch.set_num_threads`` and the reason, as one phrase for the start line.

    Args:
        threads: ``trainer.threads`` (None = choose).
        workers: data-loader worker processes of this training process (``dataset.num_workers``).
        processes: training processes on this node sharing the cores (local DDP ranks).
        cores: cores free to the process; None = :func:`available_cores`.
        idle: cores idle right now; None = measured (:func:`idle_cores`) when ``cores`` is None, else not used.
        environ: the environment (default ``os.environ``): an ``OMP_NUM_THREADS`` in it is the user's choice.
    Returns:
        ``(n, why)``: ``n`` threads (None = leave torch's setting alone: ``OMP_NUM_THREADS`` is set) and e.g.
        ``"2 cores free to this process - 1 loader worker"``.
    """
    environ = os.environ if environ is None else environ
    if threads:
        return int(threads), "trainer.threads"
    if environ.get("OMP_NUM_THREADS", "").strip():
        return None, f"OMP_NUM_THREADS={environ['OMP_NUM_THREADS'].strip()}"
    if cores is None:
        cores = available_cores()
        if idle is None:
            idle = idle_cores()
    cores = int(cores)
    busy = 0
    if idle is not None:
        busy = max(0, min(cores, cores - int(idle + 0.5)))  # cores other work keeps busy now
    share = (cores - busy) // max(1, processes)
    n = max(1, share - max(0, int(workers)))
    why = f"{cores} core{'s' if cores != 1 else ''} free to this process"
    if busy:
        why += f", {busy} busy with other work"
    if processes > 1:
        why += f" / {processes} training processes"
    if workers:
        why += f" - {workers} loader worker{'s' if workers != 1 else ''}"
    return n, why

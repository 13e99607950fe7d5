"""Pieces shared by the tests that run a real SLURM (tests/test_slurm.py, tests/test_two_nodes.py).

Debian's slurm-wlm 22.05 and munge, installed with apt-get when missing (root); a munge daemon started when none
answers; a slurm.conf written into a temporary directory (state, spool, logs and pid files there too); commands that
fail with their output in the message. Nothing here stops a daemon it did not start.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

#: Debian packages the SLURM tests use, and the commands they need from each.
PACKAGES = {
    "slurm-wlm": ("slurmctld", "slurmd", "sbatch", "srun", "scontrol", "squeue", "sinfo", "scancel"),
    "munge": ("munged", "munge", "unmunge"),
    "iproute2": ("ip",),
    "util-linux": ("unshare", "nsenter"),
    "mount": ("mount",),
}


def sh(cmd: Sequence[str], env: dict | None = None, check: bool = True, timeout: float = 60) -> str:
    """Run ``cmd`` and return its stdout; with ``check`` a non-zero exit fails the test with stdout and stderr."""
    res = subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stdout}\n{res.stderr}")
    return res.stdout


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_installed(packages: Sequence[str] = ("slurm-wlm", "munge")) -> None:
    """apt-get install the Debian ``packages`` (names from :data:`PACKAGES`) whose command is missing.

    Raises:
        RuntimeError: something is missing and this process is not root (install them first).
    """
    missing = [p for p in packages if not all(shutil.which(cmd) for cmd in PACKAGES[p])]
    if not missing:
        return
    if os.geteuid() != 0:
        raise RuntimeError(f"missing {' '.join(missing)} and this is not root: apt-get install {' '.join(missing)}")
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", *missing],
        check=True, timeout=1200, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
    )  # fmt: skip


def munge_works() -> bool:
    """True when ``munge -n | unmunge`` succeeds (a munge daemon answers on its socket)."""
    ok = subprocess.run("munge -n | unmunge", shell=True, capture_output=True, text=True)
    return "Success" in ok.stdout


def start_munge() -> bool:
    """Make munge work: create /etc/munge/munge.key if missing and start ``munged`` if none answers.

    Returns True when this call started munged (then :func:`stop_munge` it at the end). Its socket is a file
    (/run/munge), so the one daemon also serves processes in other network namespaces.
    """
    key = Path("/etc/munge/munge.key")
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
    if munge_works():
        return False
    for d in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
        Path(d).mkdir(parents=True, exist_ok=True)
    subprocess.run(["munged", "--force"], check=True, timeout=30)
    t0 = time.time()
    while not munge_works():
        assert time.time() - t0 < 30, "munged started but munge -n | unmunge does not succeed"
        time.sleep(0.5)
    return True


def stop_munge() -> None:
    """Stop the munged whose pid is in /run/munge/munged.pid (call only when :func:`start_munge` started it)."""
    kill_pid_files([Path("/run/munge/munged.pid")])


def kill_pid_files(pid_files: Sequence[Path], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to the process of each pid file that exists (gone processes and bad files are ignored)."""
    for pid_file in pid_files:
        try:
            os.kill(int(Path(pid_file).read_text().strip()), sig)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass


def memory_mb(fraction: float = 0.8) -> int:
    """``fraction`` of this machine's memory in MB (slurm.conf's RealMemory)."""
    return int(int(Path("/proc/meminfo").read_text().split()[1]) / 1024 * fraction)


def slurm_conf(
    root: Path,
    controller: str,
    nodes: Sequence[str],
    ctld_port: int,
    slurmd_port: int,
    cpus: int | None = None,
    extra: Sequence[str] = (),
) -> str:
    """The text of a slurm.conf for a test cluster whose files all live under ``root``.

    Args:
        root: directory for state, spool, logs and pid files (created). Per-node files carry the node name
            (``%n``), so several slurmd can share one configuration.
        controller: ``SlurmctldHost`` value (the controller's host name, optionally ``name(address)``).
        nodes: the ``NodeName=`` lines' contents after ``NodeName=`` (e.g. ``"node1 NodeAddr=10.77.0.1"``); each gets
            ``CPUs``, ``RealMemory`` and ``State=UNKNOWN``. The one partition, ``debug``, holds them all.
        ctld_port, slurmd_port: ``SlurmctldPort`` and ``SlurmdPort``.
        cpus: CPUs per node (default: this machine's count).
        extra: more lines.

    What matters on a Debian 12 test machine (a single-host SLURM, no site configuration): munge authentication, no
    cgroups (proctrack/linuxproc, task/none; no cgroup.conf), no accounting, ``MpiDefault=none``.
    """
    names = [n.split()[0] for n in nodes]
    for d in ("state", "log", *(f"spool/{n}" for n in names)):  # slurmd does not create its spool directory
        (root / d).mkdir(parents=True, exist_ok=True)
    cpus = cpus or os.cpu_count() or 2
    lines = [
        "ClusterName=sgtraintest",
        f"SlurmctldHost={controller}",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "AuthType=auth/munge",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SlurmUser=root",
        "SlurmdUser=root",
        "AccountingStorageType=accounting_storage/none",
        "JobCompType=jobcomp/none",
        "MpiDefault=none",
        "ReturnToService=2",
        "KillWait=30",
        "MinJobAge=300",
        # a requeued job waits for its old step credentials to expire (default 120 s) before it may start again
        "AuthInfo=cred_expire=20",
        # and then starts when the main scheduler next looks at all pending jobs (default every 60 s; the backfill
        # scheduler skips its runs while no job or node changed, and the end of that wait changes neither)
        "SchedulerParameters=sched_interval=5",
        f"StateSaveLocation={root / 'state'}",
        f"SlurmdSpoolDir={root / 'spool' / '%n'}",
        f"SlurmctldPidFile={root / 'slurmctld.pid'}",
        f"SlurmdPidFile={root / 'slurmd-%n.pid'}",
        f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
        f"SlurmdLogFile={root / 'log' / 'slurmd-%n.log'}",
        *(f"NodeName={n} CPUs={cpus} RealMemory={memory_mb()} State=UNKNOWN" for n in nodes),
        f"PartitionName=debug Nodes={','.join(names)} Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES",
        *extra,
        "",
    ]
    return "\n".join(lines)


def tail_logs(log_dir: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of every ``*.log`` in ``log_dir`` (for failure messages)."""
    out = []
    for p in sorted(Path(log_dir).glob("*.log")):
        out.append(f"--- {p.name}\n" + "\n".join(p.read_text(errors="replace").splitlines()[-lines:]))
    return "\n".join(out)


def restart_count(show_job: str) -> int:
    """``Restarts=`` of ``scontrol show job`` output, -1 when absent."""
    for tok in show_job.split():
        if tok.startswith("Restarts="):
            return int(tok.split("=")[1])
    return -1

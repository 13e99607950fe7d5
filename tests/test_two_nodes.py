"""Two SLURM nodes on one machine: a 2-node CPU DDP job, requeued mid-run, resumes exactly.

The test makes two hosts of its own: network namespaces for ``node1`` (10.77.0.1/24) and ``node2`` (10.77.0.2/24)
joined by a veth pair; every process started on a host also gets its own mount namespace, in which a hosts file of
the test (node1, node2) is bound over /etc/hosts (the machine's /etc/hosts is not touched), and the daemons a UTS
namespace named after their host. slurmctld and ``slurmd -N node1`` run on node1, ``slurmd -N node2`` on node2, one
munged (its socket is a file) serves both; every SLURM client command runs on node1. Nothing in the machine's own
network namespace ever talks to a 10.77.0.x address. The file system is shared, as a cluster's shared storage is.

``sbatch --nodes=2 --ntasks-per-node=1 scripts/slurm/train.sbatch`` trains 16 steps of a tiny StyleGAN2 with
sgtrain's DDP over gloo, one rank per node. Lightning takes the ranks from SLURM and MASTER_ADDR from the node list
(``node1``, which resolves to 10.77.0.1 in both namespaces). After two steps SIGUSR1 goes to the rank on node2 only:
the ranks agree on the flag over gloo, save ``last.ckpt`` at the same step, rank 0 (node1) runs ``scontrol
requeue``, and the requeued job resumes in the same run directory. Checked: each rank ran in its own namespace with
its own address and host name (the rank processes' network namespaces, their TCP connections across the veth, and a
line each rank prints), metrics.jsonl is continuous across the requeue, and every loss of every step and every
weight and Adam moment at the end equal (bitwise) those of an uninterrupted 2-process DDP run on localhost.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from _slurm import ensure_installed, kill_pid_files, restart_count, sh, slurm_conf, start_munge, stop_munge, tail_logs
from _tiny_run import (
    LOSS_KEYS,
    TINY,
    assert_continuous,
    env_for_tests,
    load_state,
    make_shards,
    max_abs_diff,
    read_metrics,
    slow_steps_args,
    train_cmd,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[1]
KIMG = 0.064  # 16 steps of batch 4, one tick (metrics line + checkpoint) per step; the signal comes after 2
STEP_KIMG = 0.004
#: The test hosts: node name -> address on the veth pair. Used only inside the namespaces the test makes.
NODES = {"node1": "10.77.0.1", "node2": "10.77.0.2"}
#: slurmctld / slurmd ports, inside the test's own namespaces (nothing else listens there).
CTLD_PORT, SLURMD_PORT = 6817, 6818


class TwoNodeSlurm:
    """Two test hosts (network + UTS namespaces, a veth pair) running slurmctld and one slurmd each.

    ``node(name, cmd)`` is ``cmd`` run on that host; ``client(cmd)`` runs a SLURM client on node1 with ``env``
    (SLURM_CONF set). :meth:`stop` undoes everything :meth:`start` did, also after a partial start.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        tag = f"sgt{os.getpid() % 100000}"
        self.netns = {name: f"{tag}{name[-1]}" for name in NODES}  # short: veth names are at most 15 characters
        self.veth = {name: f"{tag}v{name[-1]}" for name in NODES}
        self.conf = root / "slurm.conf"
        self.hosts = root / "hosts"  # /etc/hosts of both test hosts
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.started_munged = False
        self.made: list[str] = []  # namespaces made so far

    # --- hosts
    def node(self, name: str, cmd: list[str], hostname: bool = False) -> list[str]:
        """``cmd`` run on host ``name``: in its network namespace and in a new mount namespace where the test's
        hosts file is bound over /etc/hosts; with ``hostname`` also in a new UTS namespace whose host name is
        ``name`` (the daemons: slurmctld checks it against SlurmctldHost, gloo binds to the host name's address).

        Not ``ip netns exec``: it mounts a new /sys without the cgroup file systems, and slurmd 22.05 then fails
        with "Unable to initialize cgroup plugin" even with proctrack/linuxproc and task/none.
        """
        setup = f"mount --bind {self.hosts} /etc/hosts" + (f" && hostname {name}" if hostname else "")
        return [
            "nsenter", f"--net=/run/netns/{self.netns[name]}", "unshare", "--mount", "--propagation", "private",
            *(["--uts"] if hostname else []), "sh", "-c", f'{setup} && exec "$@"', "sh", *cmd,
        ]  # fmt: skip

    def client(self, cmd: list[str], env: dict | None = None, check: bool = True, timeout: float = 60) -> str:
        return sh(self.node("node1", cmd), env=env or self.env, check=check, timeout=timeout)

    def make_hosts(self) -> None:
        existing = sh(["ip", "netns", "list"])
        for ns in self.netns.values():
            assert not re.search(rf"^{ns}\b", existing, re.M), f"network namespace {ns} exists already"
        self.hosts.write_text("".join(f"{a} {n}\n" for n, a in {"localhost": "127.0.0.1", **NODES}.items()))
        for ns in self.netns.values():
            sh(["ip", "netns", "add", ns])
            self.made.append(ns)
        v1, v2 = self.veth["node1"], self.veth["node2"]
        sh(["ip", "link", "add", v1, "type", "veth", "peer", "name", v2])
        for name, addr in NODES.items():
            ns, dev = self.netns[name], self.veth[name]
            sh(["ip", "link", "set", dev, "netns", ns])
            sh(["ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
            sh(["ip", "-n", ns, "link", "set", dev, "up"])
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])

    def netns_inode(self, name: str) -> int:
        return os.stat(f"/run/netns/{self.netns[name]}").st_ino

    # --- SLURM
    def start(self) -> None:
        ensure_installed(("slurm-wlm", "munge", "iproute2", "util-linux", "mount"))
        self.started_munged = start_munge()
        self.make_hosts()
        nodes = [f"{n} NodeAddr={addr} NodeHostname={n}" for n, addr in NODES.items()]
        self.conf.write_text(slurm_conf(self.root, "node1", nodes, CTLD_PORT, SLURMD_PORT, cpus=2))
        conf = ["-f", str(self.conf)]
        sh(self.node("node1", ["slurmctld", *conf], hostname=True), env=self.env)
        for name in NODES:
            sh(self.node(name, ["slurmd", *conf, "-N", name], hostname=True), env=self.env)
        t0 = time.time()
        while time.time() - t0 < 120:
            out = self.client(["sinfo", "-h", "-N", "-o", "%N %T"], check=False)
            states = dict(line.split() for line in out.splitlines() if len(line.split()) == 2)
            if set(states) == set(NODES) and all(s in ("idle", "mixed", "allocated") for s in states.values()):
                return
            time.sleep(1)
        raise AssertionError(f"the two SLURM nodes did not become idle ({out!r}):\n" + self.logs())

    def logs(self) -> str:
        return tail_logs(self.root / "log")

    def stop(self) -> None:
        if len(self.made) == len(NODES) and (self.root / "slurmctld.pid").exists():
            # cancel what is left (a failed test) while the daemons still run, so that no job step outlives them
            with contextlib.suppress(Exception):
                jobs = self.client(["squeue", "-h", "-o", "%A"], check=False).split()
                if jobs:
                    self.client(["scancel", *sorted(set(jobs))], check=False)
                    t0 = time.time()
                    while self.client(["squeue", "-h"], check=False).strip() and time.time() - t0 < 90:
                        time.sleep(2)
        kill_pid_files([self.root / f"slurmd-{n}.pid" for n in NODES] + [self.root / "slurmctld.pid"])
        time.sleep(1)
        for ns in self.made:  # whatever still runs in our namespaces was started by this test (daemons, job steps)
            for pid in sh(["ip", "netns", "pids", ns], check=False).split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
        for ns in self.made:
            sh(["ip", "netns", "del", ns], check=False)  # takes the veth pair with it
        if self.made:  # a start that failed between making the veth pair and moving its ends
            sh(["ip", "link", "del", self.veth["node1"]], check=False)
        self.made = []
        if self.started_munged:
            stop_munge()

    def show(self, job: str) -> str:
        return self.client(["scontrol", "show", "job", job], check=False)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = TwoNodeSlurm(tmp_path_factory.mktemp("slurm2"))
    try:
        c.start()
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return make_shards(tmp_path_factory.mktemp("data"))


# ----------------------------------------------------------------------------------------------------------------------
# The rank processes, seen from this machine's /proc (signals and /proc files: no network)


def _rank_pids(job: str) -> dict[int, int]:
    """SLURM_PROCID -> pid of the job's running sgtrain-train processes."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
            if not any(a.endswith(b"sgtrain-train") for a in argv[:2]):
                continue
            env = dict(kv.split("=", 1) for kv in (d / "environ").read_text(errors="replace").split("\0") if "=" in kv)
        except OSError:
            continue
        if env.get("SLURM_JOB_ID") == job and "SLURM_PROCID" in env:
            out[int(env["SLURM_PROCID"])] = int(d.name)
    return out


def _tcp_of(pid: int) -> list[tuple[str, int, str, int]]:
    """(local address, port, remote address, port) of the established TCP connections owned by process ``pid``."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            m = re.fullmatch(r"socket:\[(\d+)\]", os.readlink(fd))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))

    def addr(h: str) -> tuple[str, int]:
        ip, port = h.split(":")
        return socket.inet_ntoa(struct.pack("<I", int(ip, 16))), int(port, 16)

    out = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        f = line.split()
        if f[3] == "01" and f[9] in inodes:  # 01 = ESTABLISHED
            out.append((*addr(f[1]), *addr(f[2])))
    return out


_RANK_LINE = re.compile(
    r"^sgtrain-rank procid=(\d+) restart=(\d+) node=(\S+) host=(\S+) netns=(\S+) addr=(\S*) node1=(\S*)$", re.M
)


def _rank_wrapper(path: Path) -> Path:
    """A SGTRAIN_TRAIN that prints where its rank runs, then becomes sgtrain-train (exec: same pid)."""
    ip = shutil.which("ip") or "/usr/sbin/ip"
    path.write_text(
        "#!/bin/sh\n"
        "addr=$(" + ip + " -4 -o addr show scope global | awk '{print $4}' | paste -sd, -)\n"
        'node1=$(getent hosts node1 | cut -d" " -f1)\n'
        'echo "sgtrain-rank procid=$SLURM_PROCID restart=${SLURM_RESTART_COUNT:-0} node=$SLURMD_NODENAME'
        ' host=$(hostname) netns=$(readlink /proc/self/ns/net) addr=$addr node1=$node1"\n'
        f'exec {" ".join(train_cmd())} "$@"\n'
    )
    path.chmod(0o755)
    return path


def test_two_node_job_requeued_resumes_exactly(cluster, shards, tmp_path):
    # the uninterrupted reference: 2-process DDP on localhost, same global batch, same ranks
    ref_dir = tmp_path / "ref"
    ref_cmd = [*train_cmd(), *TINY, f"dataset.path={shards}", f"train.kimg={KIMG}", f"run.dir={ref_dir}",
               "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]  # fmt: skip
    with open(tmp_path / "ref.log", "wb") as f:
        res = subprocess.run(ref_cmd, env=env_for_tests(), stdout=f, stderr=subprocess.STDOUT, timeout=900)
    assert res.returncode == 0, (tmp_path / "ref.log").read_text()[-3000:]

    run_dir = tmp_path / "run"
    env = dict(env_for_tests(), SLURM_CONF=str(cluster.conf), SGTRAIN_ACCELERATOR="cpu", RUN_DIR=str(run_dir))
    env["SGTRAIN_TRAIN"] = str(_rank_wrapper(tmp_path / "rank.sh"))
    slow = slow_steps_args(env, 1.0)  # the signal must land before the 16 steps end, however fast the machine
    out = cluster.client(
        ["sbatch", "--parsable", "--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=1", "--gpus-per-node=0",
         f"--output={tmp_path}/slurm-%j.out", "--chdir", str(tmp_path),
         str(REPO / "scripts" / "slurm" / "train.sbatch"), *TINY, f"dataset.path={shards}", f"train.kimg={KIMG}",
         *slow],
        env=env,
    )  # fmt: skip
    job = out.strip().split(";")[0]
    job_log = tmp_path / f"slurm-{job}.out"

    def state() -> str:
        return f"{cluster.show(job)}\n{job_log.read_text()[-3000:] if job_log.exists() else ''}\n{cluster.logs()}"

    t0 = time.time()
    while len(read_metrics(run_dir)) < 2:
        assert time.time() - t0 < 600, "no 2 metrics lines after 600 s:\n" + state()
        if time.time() - t0 > 30 and not cluster.client(["squeue", "-h", "-j", job], check=False).strip():
            raise AssertionError("the job ended before 2 metrics lines:\n" + state())
        time.sleep(0.2)

    # mid-run: where do the ranks run, and what do they talk to?
    pids = _rank_pids(job)
    assert sorted(pids) == [0, 1], f"rank processes found: {pids}\n" + state()
    for rank, name in enumerate(NODES):
        assert os.stat(f"/proc/{pids[rank]}/ns/net").st_ino == cluster.netns_inode(name), f"rank {rank} not in {name}"
    conns = {rank: _tcp_of(pid) for rank, pid in pids.items()}
    print(f"rank TCP connections: {conns}")
    ip1, ip2 = NODES["node1"], NODES["node2"]
    assert any(c[0] == ip2 and c[2] == ip1 for c in conns[1]), f"rank 1 has no connection to node1: {conns}"
    assert any(c[0] == ip1 and c[2] == ip2 for c in conns[0]), f"rank 0 has no connection from node2: {conns}"

    # SIGUSR1 to the rank on node2 only: both ranks must stop at the same step, rank 0 (node1) requeues
    os.kill(pids[1], signal.SIGUSR1)
    n_before = None
    t0 = time.time()
    while True:
        show = cluster.show(job)
        if n_before is None and restart_count(show) >= 1:
            n_before = len(read_metrics(run_dir))  # the requeued instance needs far longer than this to write a line
        if not cluster.client(["squeue", "-h", "-j", job], check=False).strip():
            break
        assert time.time() - t0 < 900, "the job did not finish within 900 s:\n" + state()
        time.sleep(1)
    show = cluster.show(job)
    log = job_log.read_text()
    assert restart_count(show) == 1 and "JobState=COMPLETED" in show, state()
    assert "ExitCode=0:0" in show, state()
    print(f"requeued after {n_before} of {round(KIMG / STEP_KIMG)} steps")
    assert n_before is not None and 2 <= n_before < round(KIMG / STEP_KIMG), f"requeued after {n_before} lines"
    assert log.count("received signal SIGUSR1") == 1, log[-3000:]  # the handler of rank 1, once
    assert "restart 1" in log and "resuming from" in log, log[-3000:]
    assert not list(run_dir.glob("hpc_ckpt_*.ckpt")), "Lightning's own requeue handler ran"

    # each rank, in both instances of the job, printed where it ran
    seen = {(int(m[1]), int(m[2])): m.groups()[2:] for m in _RANK_LINE.finditer(log)}
    assert sorted(seen) == [(0, 0), (0, 1), (1, 0), (1, 1)], log[-3000:]
    for (rank, _), (node, host, _netns, addr, node1) in seen.items():
        name = list(NODES)[rank]
        assert (node, host, addr, node1) == (name, name, f"{NODES[name]}/24", ip1), seen
    assert seen[0, 0][2] != seen[1, 0][2], f"both ranks in one network namespace: {seen}"

    # continuous metrics, and the same numbers as the uninterrupted run
    rows, ref_rows = read_metrics(run_dir), read_metrics(ref_dir)
    assert_continuous(rows, KIMG, STEP_KIMG)
    assert [r["kimg"] for r in rows] == [r["kimg"] for r in ref_rows]
    assert all(any(r.get(k) is not None for k in LOSS_KEYS) for r in rows), f"no losses in metrics.jsonl: {rows[0]}"
    for a, b in zip(ref_rows, rows, strict=True):
        for k in LOSS_KEYS:
            assert a.get(k) == b.get(k), f"{k} differs at kimg {a['kimg']}: {a.get(k)} vs {b.get(k)}"
    worst, where = max_abs_diff(
        load_state(ref_dir / "checkpoints" / "last.ckpt"), load_state(run_dir / "checkpoints" / "last.ckpt")
    )
    assert worst == 0.0, f"the requeued 2-node run differs from the uninterrupted one by {worst:g} at {where}"

"""A throw-away one-node Slurm cluster for tests: munge + slurmctld + slurmd.

Why a real Slurm and not a mock: the executor plugin's behaviour (sbatch flags, status
queries, GPU/task geometry, failures) is only proven by real daemons accepting the jobs.

Everything the daemons write (key, sockets, state, spool, logs) lives in one temporary
folder, the daemons run in the foreground as children of this process and are stopped by
the pids we started, never by name. Ports are picked free so a second cluster (another
test run) on the same machine does not collide. Besides the default partition there is
a higher-priority one (`URGENT_PARTITION`) whose jobs preempt and requeue the others.

Used by tests/test_slurm.py, and by hand::

    python tests/slurm/harness.py up /tmp/myslurm     # prints `export SLURM_CONF=...`
    python tests/slurm/harness.py down /tmp/myslurm   # stops exactly those daemons
"""

from __future__ import annotations

import contextlib
import getpass
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "srun", "scancel")
# Count-only fake GPUs: lets `--gpus=N` requests be scheduled and checked on CPU machines.
FAKE_GPUS = 2
# The plugin's squeue status check needs finished jobs to stay visible long enough.
MIN_JOB_AGE_S = 600
DEFAULT_CONF = Path("/etc/slurm/slurm.conf")
# A higher-PriorityTier partition on the same node: a job submitted there preempts the
# default partition's jobs the way a site's preemption does (PreemptMode=REQUEUE).
URGENT_PARTITION = "urgent"
TEST_MARKER = "SYMATO_TEST_CLUSTER"


class HarnessError(RuntimeError):
    """The cluster could not be set up; the message says which step and why."""


def unavailable_reason() -> str | None:
    """Why a real Slurm cannot run here (None when it can, possibly after an apt install)."""
    if sys.platform != "linux":
        return "needs Linux"
    if os.geteuid() != 0:
        return "needs root (installs Debian packages and starts munged/slurmctld/slurmd)"
    if DEFAULT_CONF.exists() and not DEFAULT_CONF.is_symlink():
        return f"{DEFAULT_CONF} exists: a real Slurm is configured here, not replacing it"
    if all(shutil.which(b) for b in BINARIES):
        return None
    if not shutil.which("apt-get"):
        return f"Slurm binaries missing and no apt-get to install {' '.join(PACKAGES)}"
    return None


def install_packages(log: Path) -> None:
    """apt-get install the Slurm/munge packages unless every binary is already there."""
    if all(shutil.which(b) for b in BINARIES):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    with open(log, "ab") as fh:
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        if subprocess.call(cmd, stdout=fh, stderr=fh, env=env) != 0:
            # A fresh machine may have empty package lists: update once and retry.
            subprocess.call(["apt-get", "update", "-q"], stdout=fh, stderr=fh, env=env)
            if subprocess.call(cmd, stdout=fh, stderr=fh, env=env) != 0:
                raise HarnessError(f"apt-get install {' '.join(PACKAGES)} failed, see {log}")
    missing = [b for b in BINARIES if not shutil.which(b)]
    if missing:
        raise HarnessError(f"after apt-get install, still missing: {missing}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node_line() -> str:
    """`slurmd -C`'s description of this host, with memory rounded down a little.

    Why round: slurmd refuses a node whose RealMemory exceeds what it measures, and the
    measured value moves by a few MB between calls.
    """
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith("NodeName=")), None)
    if line is None:
        raise HarnessError(f"`slurmd -C` printed no NodeName line:\n{out}")
    mem = int(re.search(r"RealMemory=(\d+)", line).group(1))
    return re.sub(r"RealMemory=\d+", f"RealMemory={max(mem - 512, 256)}", line)


@dataclass
class Cluster:
    """One running cluster: its folder, config file and the daemons we started."""

    root: Path
    conf: Path = field(init=False)
    node: str = field(init=False, default="")
    cpus: int = field(init=False, default=1)
    procs: dict[str, subprocess.Popen] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.conf = self.root / "etc" / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients (sbatch, squeue, snakemake) talking to this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    # -- setup ------------------------------------------------------------------------
    def _setup_munge(self) -> Path:
        munge = pwd.getpwnam("munge")
        mdir = self.root / "munge"
        mdir.mkdir(parents=True, exist_ok=True)
        key = mdir / "munge.key"
        key.write_bytes(os.urandom(1024))
        for path, mode in ((mdir, 0o755), (key, 0o400)):
            os.chown(path, munge.pw_uid, munge.pw_gid)
            os.chmod(path, mode)
        sock = mdir / "munge.socket"
        cmd = [
            "munged",
            "--foreground",
            f"--key-file={key}",
            f"--socket={sock}",
            f"--pid-file={mdir / 'munged.pid'}",
            f"--log-file={mdir / 'munged.log'}",
            f"--seed-file={mdir / 'munged.seed'}",
        ]
        self._start("munged", cmd, user=munge.pw_uid, group=munge.pw_gid)
        self._wait(lambda: sock.exists(), "munged socket", self.root / "munged.out")
        return sock

    def _write_conf(self, munge_socket: Path) -> None:
        node_line = _node_line()
        self.node = re.search(r"NodeName=(\S+)", node_line).group(1)
        self.cpus = int(re.search(r"CPUs=(\d+)", node_line).group(1))
        for sub in ("etc", "state", "spool", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        r = self.root
        text = f"""\
ClusterName=symatotest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1000
GresTypes=gpu
MinJobAge={MIN_JOB_AGE_S}
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
StateSaveLocation={r / "state"}
SlurmdSpoolDir={r / "spool"}
SlurmctldPidFile={r / "slurmctld.pid"}
SlurmdPidFile={r / "slurmd.pid"}
SlurmctldLogFile={r / "log" / "slurmctld.log"}
SlurmdLogFile={r / "log" / "slurmd.log"}
SlurmctldDebug=info
SlurmdDebug=info
{node_line} NodeAddr=127.0.0.1 Gres=gpu:{FAKE_GPUS} State=UNKNOWN
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes={self.node} Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName={URGENT_PARTITION} Nodes={self.node} MaxTime=INFINITE State=UP PriorityTier=2
"""
        self.conf.write_text(text)
        # Slurm drops file-less GPUs, so each fake GPU gets a placeholder device node;
        # with task/none nothing is constrained or opened, only the count is scheduled.
        dev = self.root / "dev"
        dev.mkdir(exist_ok=True)
        for i in range(FAKE_GPUS):  # character devices with /dev/null's numbers
            node = dev / f"fakegpu{i}"
            if not node.exists():
                os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        (self.root / "etc" / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={self.node} Name=gpu File={dev}/fakegpu[0-{FAKE_GPUS - 1}]\n"
        )

    def _link_default_conf(self) -> None:
        """Point /etc/slurm/slurm.conf at our config (symlink), refusing to touch a real one.

        Why: the plugin's job step strips every SLURM_* variable (SLURM_CONF included)
        before its nested `srun`, so inside a job only the default path is found.
        """
        DEFAULT_CONF.parent.mkdir(parents=True, exist_ok=True)
        if DEFAULT_CONF.is_symlink():
            target = Path(os.readlink(DEFAULT_CONF))
            if target.name != "slurm.conf" or not (target.parent / TEST_MARKER).exists():
                raise HarnessError(f"{DEFAULT_CONF} links to {target}, not a test cluster")
            DEFAULT_CONF.unlink()  # a leftover of an earlier (killed) test cluster
        elif DEFAULT_CONF.exists():
            raise HarnessError(f"{DEFAULT_CONF} exists (a real Slurm config?); not replacing it")
        (self.conf.parent / TEST_MARKER).touch()
        DEFAULT_CONF.symlink_to(self.conf)

    def _unlink_default_conf(self) -> None:
        if DEFAULT_CONF.is_symlink() and Path(os.readlink(DEFAULT_CONF)) == self.conf:
            DEFAULT_CONF.unlink()

    def up(self, log: Path | None = None, timeout: float = 60.0) -> Cluster:
        """Install if needed, start munged, slurmctld, slurmd; wait until the node is idle."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)  # munged (user munge) must reach its folder
        install_packages(log or self.root / "apt.log")
        try:
            sock = self._setup_munge()
            self._write_conf(sock)
            self._link_default_conf()
            env = self.env
            self._start("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)], env=env)
            self._start("slurmd", ["slurmd", "-D", "-f", str(self.conf), "-N", self.node], env=env)
            self._wait(
                self._node_ready,
                "node idle in sinfo",
                self.root / "log" / "slurmd.log",
                timeout=timeout,
            )
        except BaseException:
            self.down()  # never leave half a cluster running
            raise
        return self

    # -- processes --------------------------------------------------------------------
    def _start(self, name: str, cmd: list[str], **kwargs) -> None:
        out = open(self.root / f"{name}.out", "ab")  # noqa: SIM115 - lives as long as the daemon
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            **kwargs,
        )
        out.close()
        self.procs[name] = proc
        (self.root / "pids").mkdir(exist_ok=True)
        (self.root / "pids" / name).write_text(f"{proc.pid}\n")
        time.sleep(0.3)
        if proc.poll() is not None:
            raise HarnessError(
                f"{name} exited at once with {proc.returncode}: "
                f"{(self.root / f'{name}.out').read_text(errors='replace')[-2000:]}"
            )

    def _wait(self, ready, what: str, log: Path, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise HarnessError(f"{dead} died while waiting for {what}; see {self.root}")
            if ready():
                return
            time.sleep(0.5)
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
        raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}; {log}:\n{tail}")

    def _node_ready(self) -> bool:
        res = subprocess.run(
            ["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=self.env
        )
        # One line per partition the node is in; every one must be usable.
        states = set(res.stdout.split())
        return res.returncode == 0 and bool(states) and states <= {"idle", "mix", "alloc"}

    def down(self) -> None:
        """Cancel our jobs, then stop exactly the daemons this object started."""
        ctld = self.procs.get("slurmctld")
        if ctld is not None and ctld.poll() is None:
            self.cancel_all_jobs()
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                stop_pid(proc.pid, proc)
        self._unlink_default_conf()

    def cancel_all_jobs(self) -> None:
        """scancel this cluster's jobs: a failed test's jobs would outlive slurmd."""
        subprocess.run(
            ["scancel", "--full", "--user", getpass.getuser()],
            env=self.env,
            capture_output=True,
            timeout=30,
            check=False,
        )
        time.sleep(1)


def stop_pid(pid: int, proc: subprocess.Popen | None = None, grace: float = 10.0) -> None:
    """SIGTERM one pid we started, wait, SIGKILL if it lingers; reap it if it is our child."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        elif not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=5)


def _main(argv: list[str]) -> int:
    """`up DIR` starts a cluster and leaves it running; `down DIR` stops it by its pids."""
    if len(argv) != 2 or argv[0] not in {"up", "down"}:
        print(__doc__, file=sys.stderr)
        return 2
    root = Path(argv[1]).resolve()
    if argv[0] == "up":
        reason = unavailable_reason()
        if reason:
            print(f"cannot start Slurm here: {reason}", file=sys.stderr)
            return 1
        Cluster(root).up()
        print(f"export SLURM_CONF={root / 'etc' / 'slurm.conf'}")
        return 0
    cluster = Cluster(root)
    if (root / "pids" / "slurmctld").exists():
        cluster.cancel_all_jobs()
    for name in ("slurmd", "slurmctld", "munged"):
        pidfile = root / "pids" / name
        if pidfile.exists():
            stop_pid(int(pidfile.read_text()))
            pidfile.unlink()
    cluster._unlink_default_conf()
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))

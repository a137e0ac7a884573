"""A single-node Slurm for the tests, from Debian's packages (munged, slurmctld and slurmd in the
foreground, stopped by their PIDs at the end).

How the cluster is set up, and why:
- The config sits at /etc/slurm/slurm.conf (any existing one is put back afterwards): the
  plugin's job step clears every SLURM_* variable, SLURM_CONF included.
- There is no slurmdbd, so a run tells the plugin to poll `squeue` (and MinJobAge keeps
  finished jobs visible to it); a site with accounting keeps the plugin's default, `sacct`.
- The node declares 16 CPUs, 128 GB and two GPUs whatever the machine has
  (SlurmdParameters=config_overrides; nothing enforces them), so the rules' real requests
  (16 GB for training, 32 GB for PerDI, one GPU each for train/embed/perdi) are scheduled as
  they are. The GPUs' device files are symlinks to /dev/null: Slurm allocates them and the
  jobs run on the CPU.
- DefMemPerCPU keeps a job without a memory request from taking the whole node.

Needs root (daemons, /etc/slurm) and Debian's slurmctld, slurmd, slurm-client and munge: `make`
installs them when run as root, and so does :func:`unavailable` if they are missing and apt-get works.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
PROGRAMS = ["slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "sinfo", "munged", "munge", "unmunge"]
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
SLURM_CONF_DIR = Path("/etc/slurm")


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p, path=SEARCH_PATH) is None]


def unavailable() -> str | None:
    """Why no Slurm can be started here (None: it can), installing it with apt-get if it is missing."""
    if os.geteuid() != 0:
        return "needs root: starts slurmctld, slurmd and munged, and writes /etc/slurm/slurm.conf"
    if not missing_programs():
        return None
    if shutil.which("apt-get") is None:
        return f"Slurm is not installed ({', '.join(missing_programs())} missing) and there is no apt-get"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True, timeout=300, check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *PACKAGES], env=env, capture_output=True, text=True,
                       timeout=600, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        output = getattr(err, "stderr", "") or ""
        return f"could not install Debian's {' '.join(PACKAGES)}: {err}; {output[-500:]}"
    if missing_programs():
        return f"apt-get installed Slurm but {', '.join(missing_programs())} is still missing"
    return None


def program(name: str) -> str:
    return shutil.which(name, path=SEARCH_PATH)


def slurm_conf(base: Path, host: str) -> str:
    return f"""\
# written by tests/slurm_cluster.py: a one-node cluster for one test session
ClusterName=vitudiptest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
# no systemd or cgroups in a container
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={base}/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
GresTypes=gpu
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
DefMemPerCPU=1000
NodeName={host} NodeAddr=127.0.0.1 CPUs=16 RealMemory=128000 Gres=gpu:2 State=UNKNOWN
PartitionName=main Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def tail(path: Path, n: int = 3000) -> str:
    return path.read_text(errors="replace")[-n:] if path.exists() else f"({path} does not exist)"


def wait_for(check: Callable[[], bool], timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} within {timeout:.0f} s\n" + "\n".join(f"--- {p}\n{tail(p)}" for p in logs))


def munge_works() -> bool:
    encode = subprocess.run([program("munge"), "-n"], capture_output=True)
    if encode.returncode != 0:
        return False
    return subprocess.run([program("unmunge")], input=encode.stdout, capture_output=True).returncode == 0


@contextlib.contextmanager
def one_node_slurm(base: Path) -> Iterator[Path]:
    """A running one-node Slurm whose state and logs live in ``base``; yields ``base``.

    The job-completion log is ``base / "jobcomp.log"``. Whatever was in /etc/slurm is put back on exit.
    """
    for sub in ("state", "spool", "gpu", "backup"):
        (base / sub).mkdir()
    for i in range(2):
        (base / "gpu" / f"nvidia{i}").symlink_to("/dev/null")
    host = socket.gethostname().split(".")[0]
    daemons: list[tuple[str, subprocess.Popen]] = []
    moved: list[Path] = []
    try:
        # munge: the Debian package makes the key; start munged unless one already answers
        key = Path("/etc/munge/munge.key")
        if not key.exists():
            key.write_bytes(os.urandom(1024))
            shutil.chown(key, "munge", "munge")
            key.chmod(0o400)
        if not munge_works():
            Path("/run/munge").mkdir(parents=True, exist_ok=True)
            shutil.chown("/run/munge", "munge", "munge")
            log = base / "munged.out"
            daemons.append(("munged", subprocess.Popen([program("munged"), "--foreground"], user="munge",
                                                       group="munge", stdout=log.open("w"), stderr=subprocess.STDOUT)))
            wait_for(munge_works, 30, "munged did not answer", [log])

        # the config at the default path (set any existing one aside), gres GPUs on /dev/null
        SLURM_CONF_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("slurm.conf", "gres.conf", "cgroup.conf"):
            if (SLURM_CONF_DIR / name).exists():
                shutil.move(SLURM_CONF_DIR / name, base / "backup" / name)
            moved.append(SLURM_CONF_DIR / name)
        (SLURM_CONF_DIR / "slurm.conf").write_text(slurm_conf(base, host))
        (SLURM_CONF_DIR / "gres.conf").write_text(
            f"AutoDetect=off\nNodeName={host} Name=gpu File={base}/gpu/nvidia[0-1]\n")

        env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM")}
        for name, args in (("slurmctld", ["-D", "-i"]), ("slurmd", ["-D"])):
            out = (base / f"{name}.out").open("w")
            daemons.append((name, subprocess.Popen([program(name), *args], env=env, stdout=out,
                                                   stderr=subprocess.STDOUT)))

        def node_idle() -> bool:
            for name, proc in daemons:
                if proc.poll() is not None:
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{tail(base / f'{name}.out')}")
            state = subprocess.run([program("sinfo"), "-h", "-N", "-o", "%t"], capture_output=True, text=True, env=env)
            return state.stdout.strip() == "idle"

        wait_for(node_idle, 90, "the Slurm node did not become idle",
                 [base / "slurmctld.out", base / "slurmd.out", base / "slurmctld.log", base / "slurmd.log"])
        yield base
    finally:
        for _, proc in reversed(daemons):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait()
        for path in moved:
            path.unlink(missing_ok=True)
            if (base / "backup" / path.name).exists():
                shutil.move(base / "backup" / path.name, path)


def scontrol_jobs() -> dict[str, dict[str, str]]:
    """Every job slurmctld still holds (MinJobAge is an hour): id -> its fields."""
    out = subprocess.run([program("scontrol"), "-o", "show", "job"], capture_output=True, text=True, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs

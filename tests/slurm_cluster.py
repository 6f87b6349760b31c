"""A real single-node SLURM cluster on 127.0.0.1, started and stopped by a test.

Why five daemons: Snakemake's SLURM executor learns that a job ended only from
`sacct`, and sacct needs the accounting database (slurmdbd, on MariaDB); munge
signs every message between them. Everything lives in one temporary folder,
on ports picked free at start, so the machine's own services and files are
never touched. Needs root (slurmd starts the jobs) and Debian's packages:
`make slurm-deps` installs them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

DEBIAN_PACKAGES = ("slurm-wlm", "slurmdbd", "munge", "mariadb-server")
PROGRAMS = (
    "munged",
    "mariadb-install-db",
    "mariadbd",
    "slurmdbd",
    "slurmctld",
    "slurmd",
    "sbatch",
    "sacct",
    "sacctmgr",
    "sinfo",
)
CLUSTER = "dlmarktest"


def missing_programs() -> list[str]:
    return [p for p in PROGRAMS if shutil.which(p) is None]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class LocalSlurm:
    """Start with `with LocalSlurm(partitions) as cluster:`; run jobs with `cluster.env`.

    Every partition spans the one node (this machine), so a profile's
    partition names can be used as they are.
    """

    def __init__(self, partitions: tuple[str, ...] = ("cpu",), startup_timeout: float = 60):
        missing = missing_programs()
        if missing:
            raise RuntimeError(
                f"a local SLURM cluster needs {', '.join(missing)}: run `make slurm-deps` "
                f"(as root: apt-get install -y {' '.join(DEBIAN_PACKAGES)})"
            )
        if os.geteuid() != 0:
            raise RuntimeError("a local SLURM cluster must be started as root (slurmd starts the jobs)")
        self.partitions = partitions
        self.timeout = startup_timeout
        # Short path: munge's socket path must fit in 108 bytes.
        self.root = Path(tempfile.mkdtemp(prefix="dlslurm-", dir="/tmp"))
        self.node = socket.gethostname().split(".")[0]
        self.ports = {name: _free_port() for name in ("mysql", "dbd", "ctld", "slurmd")}
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.env = {
            **os.environ,
            "SLURM_CONF": str(self.root / "slurm.conf"),
            "USER": os.environ.get("USER", "root"),  # the executor plugin reads it
        }

    # -- configuration -----------------------------------------------------

    def _write_configs(self) -> None:
        r = self.root
        for folder in ("state", "spool", "log", "db"):
            (r / folder).mkdir()
        key = r / "munge.key"
        key.write_bytes(os.urandom(128))
        key.chmod(0o600)
        (r / "init.sql").write_text(
            "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';\n"
            "GRANT ALL ON *.* TO 'slurm'@'127.0.0.1';\n"
        )
        auth = f"AuthType=auth/munge\nAuthInfo=socket={r}/munge.sock\n"
        dbd = r / "slurmdbd.conf"  # slurmdbd reads it next to $SLURM_CONF
        dbd.write_text(
            auth + f"DbdAddr=127.0.0.1\nDbdHost=localhost\nDbdPort={self.ports['dbd']}\n"
            f"SlurmUser=root\nPidFile={r}/slurmdbd.pid\nLogFile={r}/log/slurmdbd.log\n"
            "StorageType=accounting_storage/mysql\nStorageHost=127.0.0.1\n"
            f"StoragePort={self.ports['mysql']}\nStorageUser=slurm\nStoragePass=slurm\n"
            "StorageLoc=slurm_acct_db\n"
        )
        dbd.chmod(0o600)
        memory_mb = int(psutil.virtual_memory().total / 2**20 * 0.9)
        cpus = os.cpu_count() or 1
        partitions = "".join(
            f"PartitionName={name} Nodes={self.node} Default={'YES' if i == 0 else 'NO'} "
            "MaxTime=INFINITE State=UP\n"
            for i, name in enumerate(self.partitions)
        )
        (r / "slurm.conf").write_text(
            f"ClusterName={CLUSTER}\nSlurmctldHost={self.node}(127.0.0.1)\n"
            f"SlurmctldPort={self.ports['ctld']}\nSlurmdPort={self.ports['slurmd']}\n"
            "SlurmUser=root\nSlurmdUser=root\n" + auth + f"StateSaveLocation={r}/state\n"
            f"SlurmdSpoolDir={r}/spool\nSlurmctldPidFile={r}/slurmctld.pid\n"
            f"SlurmdPidFile={r}/slurmd.pid\nSlurmctldLogFile={r}/log/slurmctld.log\n"
            f"SlurmdLogFile={r}/log/slurmd.log\n"
            # No cgroups: this runs inside containers and VMs alike.
            "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
            "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n"
            "ReturnToService=2\nKillWait=5\nJobAcctGatherType=jobacct_gather/none\n"
            "AccountingStorageType=accounting_storage/slurmdbd\n"
            f"AccountingStorageHost=127.0.0.1\nAccountingStoragePort={self.ports['dbd']}\n"
            # The socket of this cluster's munged, for talking to slurmdbd too.
            f"AccountingStoragePass={r}/munge.sock\nAccountingStoreFlags=job_comment\n"
            f"NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} "
            "State=UNKNOWN\n" + partitions
        )

    # -- daemons -----------------------------------------------------------

    def _start(self, name: str, *command: str) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self.processes.append((name, process))

    def _wait(self, what: str, ready, log: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not ready():
            dead = [name for name, p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                reason = f"{', '.join(dead)} exited" if dead else f"not ready in {self.timeout:.0f} s"
                raise RuntimeError(f"local SLURM: {what} {reason}:\n{self.log_tail(log)}")
            time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.root / "log" / name
        if not path.exists():
            return f"({path} is missing)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def _node_idle(self) -> bool:
        result = self.run("sinfo", "--noheader", "--Node", "--format=%t", check=False)
        return result.returncode == 0 and set(result.stdout.split()) == {"idle"}

    def start(self) -> None:
        r = self.root
        self._write_configs()
        self._start(
            "munged", "munged", "--foreground", "--force", f"--key-file={r}/munge.key",
            f"--socket={r}/munge.sock", f"--pid-file={r}/munged.pid",
            f"--log-file={r}/log/munged.log", f"--seed-file={r}/munge.seed",
        )  # fmt: skip
        self._wait("munged", lambda: (r / "munge.sock").exists(), "munged.out")
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={r}/db", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True,
        )  # fmt: skip
        self._start(
            "mariadbd", "mariadbd", "--no-defaults", f"--datadir={r}/db", "--user=root",
            f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1",
            f"--socket={r}/mysql.sock", f"--init-file={r}/init.sql",
            "--innodb-buffer-pool-size=32M",
        )  # fmt: skip
        self._wait("mariadbd", lambda: _port_open(self.ports["mysql"]), "mariadbd.out")
        self._start("slurmdbd", "slurmdbd", "-D")
        self._wait("slurmdbd", lambda: _port_open(self.ports["dbd"]), "slurmdbd.log")
        self.run("sacctmgr", "--immediate", "add", "cluster", CLUSTER)
        self._start("slurmctld", "slurmctld", "-D", "-i")
        self._wait("slurmctld", lambda: _port_open(self.ports["ctld"]), "slurmctld.log")
        self._start("slurmd", "slurmd", "-D", "-N", self.node)
        self._wait("the node", self._node_idle, "slurmd.log")

    def stop(self) -> None:
        for _, process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.processes.clear()

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        """A SLURM client command against this cluster."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)

    def jobs(self) -> list[dict[str, str]]:
        """Every job the cluster ran, from its accounting database."""
        fields = ["JobIdRaw", "JobName", "Comment", "State", "Submit", "Start", "End"]
        result = self.run(
            "sacct", "--allusers", "-X", "--parsable2", "--noheader", "--starttime=now-1days",
            f"--format={','.join(fields)}",
        )  # fmt: skip
        return [dict(zip(fields, line.split("|"))) for line in result.stdout.splitlines()]

    def __enter__(self) -> "LocalSlurm":
        try:
            self.start()
        except BaseException:
            self.stop()  # the folder stays, with the daemons' logs
            raise
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.stop()
        if exc_type is None:  # keep the daemons' logs of a failed run
            shutil.rmtree(self.root, ignore_errors=True)

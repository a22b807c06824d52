"""A real single-node Slurm cluster for the Slurm plugin's tests and benchmark, imported by name
(``from _slurm_testkit import ...``).

:func:`start_cluster` makes a temporary directory holding everything: a munge key, a ``slurm.conf`` for one node
(this host, its CPUs, ``proctrack/linuxproc`` and ``task/none`` so no cgroups are needed, a short ``MinJobAge``),
state and spool directories, SSH host and user keys, an ``authorized_keys`` and a ``known_hosts``. It then starts, as
root and in the foreground, ``munged``, ``slurmctld``, ``slurmd`` and an ``sshd`` on a free loopback port whose
sessions get ``SLURM_CONF`` (so ``sbatch``/``squeue`` over SSH reach this cluster, not the system's). Every daemon
dies with the process that started it (``PR_SET_PDEATHSIG``), and :meth:`SlurmTestCluster.stop` cancels what is
still queued, stops the daemons and removes the directory.

The packages come from ``scripts/bootstrap`` (slurmctld, slurmd, slurm-client, munge, openssh-server).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")
DAEMONS = ("munged", "slurmctld", "slurmd", "sshd")
CLIENTS = ("sbatch", "squeue", "scontrol", "scancel", "sinfo")
START_TIMEOUT_S = 60.0
MIN_JOB_AGE_S = 10


class ClusterUnavailable(RuntimeError):
    """The cluster could not be started here (packages missing, not root, a daemon that would not come up)."""


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in SBIN:
        candidate = os.path.join(folder, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def missing_binaries() -> list[str]:
    return [name for name in (*DAEMONS, *CLIENTS) if find_binary(name) is None]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    # The daemons run in the foreground as our children: if the test process is killed they go too.
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    os.setsid()


@dataclass
class SlurmTestCluster:
    """A running cluster; ``ssh_config()`` is what a task's ``ssh_config`` should be to reach it."""

    root: Path
    node: str
    ssh_port: int
    user_key: Path
    known_hosts: Path
    slurm_conf: Path
    remote_dir: str = ""  # where the tests' runs put their directories on the cluster
    username: str = "root"
    host: str = "127.0.0.1"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    made_privsep_dir: bool = False

    # -- what tests use ---------------------------------------------------------------------------------------
    def ssh_config(self, **overrides: Any) -> dict[str, Any]:
        config: dict[str, Any] = {"host": self.host, "port": self.ssh_port, "username": self.username,
                                  "client_keys": [str(self.user_key)], "known_hosts": str(self.known_hosts)}
        config.update(overrides)
        return config

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.slurm_conf)}

    def run(self, *command: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """A Slurm client command run here against this cluster (what the tests check the plugin's work with)."""
        return subprocess.run(list(command), env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def active_jobs(self, job_id: str | None = None) -> list[str]:
        """``squeue``'s view: ids of the jobs still pending, running or completing (one job, or all)."""
        args = ["squeue", "-h", "-o", "%i %T"] + (["-j", job_id] if job_id else [])
        result = self.run(*args, check=False)
        return [line.split()[0] for line in result.stdout.splitlines() if line.strip()]

    def wait_idle(self, timeout: float = 60) -> None:
        end = time.monotonic() + timeout
        while self.active_jobs() and time.monotonic() < end:
            time.sleep(0.2)

    def job_record(self, job_id: str) -> dict[str, str]:
        """``scontrol show job -o`` as a dict (empty once the job has left the controller)."""
        result = self.run("scontrol", "show", "job", "-o", job_id, check=False)
        record: dict[str, str] = {}
        for token in result.stdout.split():
            key, sep, value = token.partition("=")
            if sep:
                record[key] = value
        return record

    def ssh_sessions(self) -> list[int]:
        """Pids of the per-connection processes of this cluster's sshd (one per open SSH connection)."""
        import psutil

        master = self.processes.get("sshd")
        if master is None:
            return []
        try:
            return [child.pid for child in psutil.Process(master.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def drop_ssh_connections(self) -> int:
        """Kill every open SSH connection (its server-side process): what a network drop does to a client."""
        killed = 0
        for pid in self.ssh_sessions():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        return killed

    def logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            with contextlib.suppress(OSError):
                lines = path.read_text(errors="replace").splitlines()[-15:]
                parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)

    # -- teardown ---------------------------------------------------------------------------------------------
    def step_daemons(self) -> list[Any]:
        """This cluster's ``slurmstepd`` processes (they detach from slurmd; known by the config in their env)."""
        import psutil

        found = []
        marker = f"SLURM_CONF={self.slurm_conf}"
        for process in psutil.process_iter(["name"]):
            try:
                if process.info["name"] == "slurmstepd" and marker in "\0".join(
                        f"{k}={v}" for k, v in process.environ().items()):
                    found.append(process)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    def _wait_for_step_daemons(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        while self.step_daemons() and time.monotonic() < end:
            time.sleep(0.2)

    def stop(self) -> None:
        if "slurmctld" in self.processes and self.processes["slurmctld"].poll() is None:
            with contextlib.suppress(Exception):
                self.run("scancel", "--full", "--user", self.username, check=False, timeout=20)
                self.wait_idle(timeout=30)
        self._wait_for_step_daemons(timeout=15)
        for name in reversed(DAEMONS):
            process = self.processes.get(name)
            if process is None:
                continue
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait(timeout=15)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # what the group still holds (sshd sessions)
        self.processes.clear()
        from flyte.extend import kill_processes_naming

        kill_processes_naming(str(self.root))  # a session that escaped its group
        for process in self.step_daemons():
            with contextlib.suppress(Exception):
                process.kill()
        shutil.rmtree(self.root, ignore_errors=True)
        if self.made_privsep_dir:
            with contextlib.suppress(OSError):
                os.rmdir("/run/sshd")


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _slurm_conf(root: Path, node: str, ctld_port: int, slurmd_port: int) -> str:
    cpus = os.cpu_count() or 1
    return "\n".join([
        "ClusterName=flytetest",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ctld_port}",
        f"SlurmdPort={slurmd_port}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={root}/munge/munge.socket",
        "SlurmUser=root",
        "SlurmdUser=root",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/run/slurmctld.pid",
        f"SlurmdPidFile={root}/run/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        # No cgroups: processes tracked through /proc, no task binding.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core",
        "SchedulerType=sched/builtin",
        "SchedulerParameters=batch_sched_delay=0,sched_min_interval=100000",
        "MpiDefault=none",
        "SwitchType=switch/none",
        "ReturnToService=2",
        # Finished jobs leave the controller soon; time limits are checked often and enforced without delay.
        f"MinJobAge={MIN_JOB_AGE_S}",
        "KillWait=2",
        "OverTimeLimit=0",
        "InactiveLimit=0",
        "MessageTimeout=20",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN",
        f"PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4",
        "",
    ])


def _sshd_conf(root: Path, port: int, slurm_conf: Path) -> str:
    return "\n".join([
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {root}/ssh/host_key",
        f"PidFile {root}/run/sshd.pid",
        f"AuthorizedKeysFile {root}/ssh/authorized_keys",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",  # the keys live under the temp dir, not in a home with sshd's expected modes
        "MaxSessions 32",
        "MaxStartups 50:30:100",
        "Subsystem sftp internal-sftp",
        f"SetEnv SLURM_CONF={slurm_conf}",
        "LogLevel INFO",
        "",
    ])


def _make_keys(ssh_dir: Path, port: int) -> None:
    import asyncssh

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(ssh_dir / "host_key"))
    user_key = asyncssh.generate_private_key("ssh-ed25519")
    user_key.write_private_key(str(ssh_dir / "user_key"))
    (ssh_dir / "host_key").chmod(0o600)
    (ssh_dir / "user_key").chmod(0o600)
    _write(ssh_dir / "authorized_keys", user_key.export_public_key().decode(), 0o600)
    _write(ssh_dir / "known_hosts", f"[127.0.0.1]:{port} {host_key.export_public_key().decode()}", 0o600)
    # A known_hosts that names another key for the same host: what a man in the middle would look like.
    other = asyncssh.generate_private_key("ssh-ed25519")
    _write(ssh_dir / "wrong_known_hosts", f"[127.0.0.1]:{port} {other.export_public_key().decode()}", 0o600)
    # A key the server does not know.
    stranger = asyncssh.generate_private_key("ssh-ed25519")
    stranger.write_private_key(str(ssh_dir / "stranger_key"))
    (ssh_dir / "stranger_key").chmod(0o600)


def _start(cluster: SlurmTestCluster, name: str, command: list[str]) -> None:
    log = open(cluster.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the daemon writes to it until stopped
    try:
        cluster.processes[name] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                                   stderr=subprocess.STDOUT, env=cluster.env,
                                                   preexec_fn=_die_with_parent)
    finally:
        log.close()


def _wait_for(cluster: SlurmTestCluster, what: str, ready: Any, deadline: float) -> None:
    while True:
        for name, process in cluster.processes.items():
            if process.poll() is not None:
                raise ClusterUnavailable(f"{name} exited with code {process.returncode} while waiting for {what}\n"
                                         f"{cluster.logs()}")
        try:
            if ready():
                return
        except (OSError, subprocess.SubprocessError):
            pass
        if time.monotonic() > deadline:
            raise ClusterUnavailable(f"timed out waiting for {what}\n{cluster.logs()}")
        time.sleep(0.2)


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_cluster() -> SlurmTestCluster:
    """Start munged, slurmctld, slurmd and sshd (see the module's docstring); raises :class:`ClusterUnavailable`
    with the daemons' logs when it cannot."""
    missing = missing_binaries()
    if missing:
        raise ClusterUnavailable(f"missing {', '.join(missing)}: run scripts/bootstrap (it installs slurmctld, "
                                 "slurmd, slurm-client, munge and openssh-server)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("the test cluster's daemons (slurmd, sshd) must run as root")
    root = Path(tempfile.mkdtemp(prefix="flyte-slurm-cluster-"))
    root.chmod(0o755)  # munged's socket and the job's files must be reachable
    node = socket.gethostname().split(".")[0]
    ctld_port, slurmd_port, ssh_port = free_port(), free_port(), free_port()
    for sub in ("munge", "state", "spool", "run", "log", "ssh", "home", "home/runs"):
        (root / sub).mkdir()
    (root / "munge").chmod(0o755)
    (root / "ssh").chmod(0o700)
    cluster = SlurmTestCluster(root=root, node=node, ssh_port=ssh_port, user_key=root / "ssh" / "user_key",
                               known_hosts=root / "ssh" / "known_hosts", slurm_conf=root / "slurm.conf",
                               remote_dir=str(root / "home" / "runs"))
    try:
        (root / "munge" / "munge.key").write_bytes(os.urandom(1024))
        (root / "munge" / "munge.key").chmod(0o400)
        _write(cluster.slurm_conf, _slurm_conf(root, node, ctld_port, slurmd_port))
        _make_keys(root / "ssh", ssh_port)
        sshd_config = _write(root / "ssh" / "sshd_config", _sshd_conf(root, ssh_port, cluster.slurm_conf), 0o600)
        if not os.path.isdir("/run/sshd"):  # sshd's privilege separation directory
            os.makedirs("/run/sshd", mode=0o755)
            cluster.made_privsep_dir = True
        deadline = time.monotonic() + START_TIMEOUT_S
        socket_path = root / "munge" / "munge.socket"
        _start(cluster, "munged", [find_binary("munged") or "munged", "--foreground", "--force",
                                   f"--socket={socket_path}", f"--key-file={root}/munge/munge.key",
                                   f"--pid-file={root}/run/munged.pid", f"--seed-file={root}/munge/seed",
                                   f"--log-file={root}/log/munged.log"])
        _wait_for(cluster, "munged", lambda: subprocess.run(
            [find_binary("munge") or "munge", "-n", f"--socket={socket_path}"], capture_output=True,
            timeout=10).returncode == 0, deadline)
        _start(cluster, "slurmctld", [find_binary("slurmctld") or "slurmctld", "-D", "-f", str(cluster.slurm_conf)])
        _wait_for(cluster, "slurmctld", lambda: "UP" in cluster.run("scontrol", "ping", check=False,
                                                                    timeout=10).stdout, deadline)
        _start(cluster, "slurmd", [find_binary("slurmd") or "slurmd", "-D", "-N", node, "-f", str(cluster.slurm_conf)])
        _wait_for(cluster, "slurmd to register the node", lambda: cluster.run(
            "sinfo", "-h", "-n", node, "-o", "%t", check=False, timeout=10).stdout.strip() in ("idle", "mix"),
            deadline)
        _start(cluster, "sshd", [find_binary("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(sshd_config)])
        _wait_for(cluster, "sshd", lambda: _port_open(ssh_port), deadline)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def main() -> None:
    """``python tests/slurm/_slurm_testkit.py``: start the cluster, submit one job, stop (a manual check)."""
    cluster = start_cluster()
    try:
        print(cluster.run("sinfo").stdout)
        job = cluster.run("sbatch", "--parsable", "--output=/dev/null", f"--chdir={cluster.root}", "--wrap",
                          "hostname").stdout.strip()
        print("submitted", job)
        cluster.wait_idle()
        print(cluster.job_record(job).get("JobState"))
    finally:
        cluster.stop()


if __name__ == "__main__":
    sys.exit(main())

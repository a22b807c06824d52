"""SSH connections to login nodes: one per cluster login (host, port, user) and run, shared by every call of the
run, made again when it drops.

A :class:`ClusterLink` runs commands (``sbatch``, ``squeue``...) in a long-lived shell on its connection (see
``_shell``; an exec channel each where that shell cannot start) and moves files over one SFTP session. Commands that only read (``squeue``, ``scontrol show``) are retried on a fresh connection when the old one
drops; one that changes something (``sbatch``) is not, since it may have happened. Channels are limited per
connection, below sshd's default ``MaxSessions`` (10), so many concurrent calls queue instead of being refused.

asyncssh is imported here only, when the first connection is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ._errors import (
    SlurmAuthenticationError,
    SlurmCommandError,
    SlurmConnectionError,
    SlurmError,
    SlurmHostKeyError,
)
from ._shell import RemoteShell, ShellError
from .ssh_utils import PASSPHRASE_ENV, PRIVATE_KEY_ENV, SlurmCluster, SSHConfig

log = logging.getLogger("flyteplugins.slurm")
T = TypeVar("T")

MAX_CHANNELS = 8  # exec channels at once per connection; the SFTP session is one more
RECONNECT_ATTEMPTS = 3
RECONNECT_BACKOFF_S = 0.5
COMMAND_TIMEOUT_S = 120.0
KEEPALIVE_S = 30.0
_POOL_KEY = "slurm_connections"


@dataclass(frozen=True)
class CommandResult:
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


def _dropped_errors() -> tuple[type[BaseException], ...]:
    import asyncssh

    return (asyncssh.ConnectionLost, asyncssh.DisconnectError, asyncssh.SFTPConnectionLost, ConnectionError,
            BrokenPipeError, EOFError)


class ClusterLink:
    """One login to one cluster: its connection (made on first use, again after a drop) and SFTP session."""

    def __init__(self, ssh: SSHConfig) -> None:
        self.ssh = ssh
        self.connections_made = 0
        self.home: str | None = None
        self.checked: dict[str, str] = {}  # what this cluster was found not to support ("squeue --json", "sacct")
        self._conn: Any = None
        self._sftp: Any = None
        self._lock = asyncio.Lock()
        self._channels = asyncio.Semaphore(MAX_CHANNELS)
        self._closed = False
        self.use_shell = True
        self._shell: RemoteShell | None = None
        self._shell_conn: Any = None
        self._shell_lock = asyncio.Lock()

    @property
    def cluster(self) -> SlurmCluster:
        return self.ssh.cluster

    # -- the connection ---------------------------------------------------------------------------------------
    async def connection(self) -> Any:
        async with self._lock:
            if self._closed:
                raise SlurmConnectionError(f"{self.ssh.describe()}: the run's SSH connections are closed")
            if self._conn is None or self._conn.is_closed():
                self._conn = None
                self._sftp = None
                self._conn = await connect(self.ssh)
                self.connections_made += 1
            return self._conn

    async def _forget(self, conn: Any) -> None:
        """Drop ``conn`` (broken); the next use connects again."""
        async with self._lock:
            if self._conn is conn:
                self._conn = None
                self._sftp = None
        with contextlib.suppress(Exception):
            conn.close()

    async def sftp(self) -> Any:
        conn = await self.connection()
        async with self._lock:
            if self._sftp is None or self._conn is not conn:
                self._sftp = await conn.start_sftp_client()
            return self._sftp

    async def close(self) -> None:
        if self._shell is not None:
            self._shell.close()
            self._shell = None
        async with self._lock:
            self._closed = True
            conn, self._conn, self._sftp = self._conn, None, None
        if conn is not None:
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 10)

    # -- using it ---------------------------------------------------------------------------------------------
    async def run(self, command: str, *, idempotent: bool = True, timeout: float = COMMAND_TIMEOUT_S) -> CommandResult:
        """Run ``command`` on the login node (through the login's shell); its exit status, stdout and stderr.
        A dropped connection is made again and an ``idempotent`` command run again."""

        async def once(conn: Any) -> CommandResult:
            shell = await self._shell_for(conn)
            if shell is not None:
                try:
                    status, out, err = await shell.run(command, timeout)
                    return CommandResult(command, status, _text(out), _text(err))
                except ShellError as exc:
                    if not idempotent:  # it may have run: not again
                        raise SlurmConnectionError(f"{self.ssh.describe()}: the command shell broke while running "
                                                   f"{command.split()[0]!r} ({exc}); it may have taken effect") from exc
                except TimeoutError:
                    raise SlurmCommandError(f"{self.ssh.describe()}: {command!r} did not finish within {timeout:g}s",
                                            command) from None
            try:
                async with self._channels:
                    done = await conn.run(command, check=False, timeout=timeout)
            except asyncssh_timeout() as exc:
                raise SlurmCommandError(f"{self.ssh.describe()}: {command!r} did not finish within {timeout:g}s",
                                        command) from exc
            status = done.exit_status if done.exit_status is not None else 128 + _signal_number(done.exit_signal)
            return CommandResult(command, status, _text(done.stdout), _text(done.stderr))

        return await self._with_connection(once, idempotent, f"running {command.split()[0]!r}")

    async def prepare(self) -> None:
        """Start the command shell now (while files are sent, say), so the next command need not wait for it."""
        await self._shell_for(await self.connection())

    async def _shell_for(self, conn: Any) -> RemoteShell | None:
        """The connection's command shell, started on first use; None where it cannot be (commands then run in
        an exec channel each)."""
        async with self._shell_lock:
            if self._shell is not None and not self._shell.broken and self._shell_conn is conn:
                return self._shell
            if self._shell is not None:
                self._shell.close()
                self._shell = None
            if not self.use_shell:
                return None
            try:
                self._shell = await RemoteShell.start(conn)
                self._shell_conn = conn
            except (ShellError, TimeoutError, *_channel_errors()) as exc:
                log.info("%s: no command shell (%s); running each command in its own channel", self.ssh.describe(),
                         exc)
                self.use_shell = False
                return None
            return self._shell

    async def with_sftp(self, operation: Callable[[Any], Awaitable[T]], what: str) -> T:
        """``operation(sftp)``, again on a fresh connection if the connection drops meanwhile (file transfers are
        written to be repeatable)."""

        async def once(conn: Any) -> T:
            return await operation(await self.sftp())

        return await self._with_connection(once, True, what)

    async def _with_connection(self, operation: Callable[[Any], Awaitable[T]], repeatable: bool, what: str) -> T:
        dropped = _dropped_errors()
        for attempt in range(RECONNECT_ATTEMPTS + 1):
            conn = await self.connection()
            try:
                return await operation(conn)
            except dropped as exc:
                if isinstance(exc, SlurmError):  # connecting again failed: that error says it best
                    raise
                await self._forget(conn)
                if not repeatable or attempt == RECONNECT_ATTEMPTS:
                    raise SlurmConnectionError(
                        f"{self.ssh.describe()}: the SSH connection dropped while {what}: "
                        f"{type(exc).__name__}: {exc}" + ("" if repeatable else
                                                           " (not repeated: it may have taken effect)")) from exc
                log.info("%s: connection dropped while %s (%s); connecting again", self.ssh.describe(), what, exc)
                await asyncio.sleep(RECONNECT_BACKOFF_S * (attempt + 1))
        raise AssertionError("unreachable")

    async def home_dir(self) -> str:
        """The login's home directory (where relative paths on the cluster start)."""
        if self.home is None:
            self.home = await self.with_sftp(lambda sftp: sftp.realpath("."), "finding the home directory")
        return self.home


def asyncssh_timeout() -> type[BaseException]:
    import asyncssh

    return asyncssh.TimeoutError  # type: ignore[no-any-return]


def _channel_errors() -> tuple[type[BaseException], ...]:
    import asyncssh

    return (asyncssh.ChannelOpenError, asyncssh.ProcessError)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _signal_number(name: Any) -> int:
    import signal

    if not name:
        return 0
    try:
        return int(signal.Signals[f"SIG{name}" if not str(name).startswith("SIG") else str(name)])
    except KeyError:
        return 0


# -- connecting ---------------------------------------------------------------------------------------------------
def _client_keys(ssh: SSHConfig) -> Any:
    """The keys to offer: those of ``client_keys`` (read here, so a bad one is named) and the key text of
    ``FLYTE_SLURM_PRIVATE_KEY``, kept in memory; ``()`` (asyncssh's defaults: ~/.ssh/id_*, an agent) when none."""
    import asyncssh

    keys = []
    passphrase = os.environ.get(PASSPHRASE_ENV) or None
    text = os.environ.get(PRIVATE_KEY_ENV)
    if text:
        try:
            keys.append(asyncssh.import_private_key(text, passphrase))
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise SlurmAuthenticationError(f"{ssh.describe()}: the private key in ${PRIVATE_KEY_ENV} cannot be used: "
                                           f"{exc}") from None
    for path in ssh.key_files():
        try:
            keys.append(asyncssh.read_private_key(path, passphrase))
        except FileNotFoundError:
            raise SlurmAuthenticationError(f"{ssh.describe()}: SSHConfig.client_keys: {path} does not exist") from None
        except OSError as exc:
            raise SlurmAuthenticationError(f"{ssh.describe()}: SSHConfig.client_keys: {path} cannot be read: "
                                           f"{exc.strerror or exc}") from None
        except asyncssh.KeyEncryptionError as exc:
            raise SlurmAuthenticationError(f"{ssh.describe()}: SSHConfig.client_keys: {path} is encrypted and could "
                                           f"not be decrypted ({exc}); set its passphrase in ${PASSPHRASE_ENV}") from None
        except asyncssh.KeyImportError as exc:
            raise SlurmAuthenticationError(f"{ssh.describe()}: SSHConfig.client_keys: {path} is not a private key "
                                           f"asyncssh can read ({exc})") from None
    return keys or ()


def _known_hosts(ssh: SSHConfig) -> Any:
    files = ssh.known_hosts_files()
    if files is None:
        log.warning("%s: host key verification is off (SSHConfig(known_hosts=None))", ssh.describe())
        return None
    present = [path for path in files if os.path.isfile(path)]
    if not present:
        raise SlurmHostKeyError(
            f"{ssh.describe()}: no known_hosts file to verify the server's host key with (looked for "
            f"{', '.join(files)}); add the host's key (`ssh-keyscan -p {ssh.port} {ssh.host} >> ~/.ssh/known_hosts`, "
            "after checking its fingerprint) or name a file with SSHConfig(known_hosts=...)")
    return present


async def connect(ssh: SSHConfig) -> Any:
    """An asyncssh connection to ``ssh``'s login node, or an error that says what stood in the way."""
    import asyncssh

    keys = _client_keys(ssh)
    known_hosts = _known_hosts(ssh)
    options: dict[str, Any] = {
        "port": ssh.port, "known_hosts": known_hosts, "client_keys": keys,
        "connect_timeout": ssh.connect_timeout, "keepalive_interval": KEEPALIVE_S, "keepalive_count_max": 3,
        "preferred_auth": "publickey", "password_auth": False, "kbdint_auth": False,
    }
    if ssh.username:
        options["username"] = ssh.username
    where = ssh.describe()
    try:
        return await asyncssh.connect(ssh.host, **options)
    except asyncssh.HostKeyNotVerifiable as exc:
        raise SlurmHostKeyError(
            f"{where}: the server's host key is not trusted by {', '.join(known_hosts or [])} ({exc.reason}). The "
            "connection was refused: the server may not be the one you expect. If its key changed legitimately, "
            f"replace the entry (`ssh-keygen -R '[{ssh.host}]:{ssh.port}'`, then add the new key after checking its "
            "fingerprint)") from None
    except asyncssh.PermissionDenied as exc:
        offered = ", ".join(ssh.key_files()) or "the default keys (~/.ssh/id_*) and ssh-agent"
        raise SlurmAuthenticationError(
            f"{where}: public-key authentication failed ({exc.reason}); offered: {offered}"
            f"{' and $' + PRIVATE_KEY_ENV if os.environ.get(PRIVATE_KEY_ENV) else ''}. Check SSHConfig.username and "
            "that the key's public half is in the login's ~/.ssh/authorized_keys") from None
    except asyncssh.DisconnectError as exc:
        raise SlurmConnectionError(f"{where}: the server closed the connection: {exc.reason}") from None
    except (asyncio.TimeoutError, TimeoutError):
        raise SlurmConnectionError(f"{where}: no SSH connection within {ssh.connect_timeout:g}s "
                                   "(SSHConfig.connect_timeout)") from None
    except OSError as exc:
        raise SlurmConnectionError(f"cannot reach {where}: {exc.strerror or exc}") from None


# -- the run's pool -----------------------------------------------------------------------------------------------
class ConnectionPool:
    """A run's links, one per cluster login; closed with the run."""

    def __init__(self) -> None:
        self._links: dict[SlurmCluster, ClusterLink] = {}

    def link(self, ssh: SSHConfig) -> ClusterLink:
        link = self._links.get(ssh.cluster)
        if link is None:
            link = self._links[ssh.cluster] = ClusterLink(ssh)
        return link

    async def close(self) -> None:
        links, self._links = list(self._links.values()), {}
        for link in links:
            await link.close()


def pool_for(run: Any) -> ConnectionPool:
    """The run's pool, made on first use and closed when the run ends."""
    pool = run.scratch.get(_POOL_KEY)
    if pool is None:
        pool = run.scratch[_POOL_KEY] = ConnectionPool()
        run.closers.append(pool.close)
    return pool  # type: ignore[no-any-return]

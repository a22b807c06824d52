"""How the plugin reaches a Slurm cluster's login node: :class:`SSHConfig` and :class:`SlurmCluster` (flytekit's
``flytekitplugins.slurm.ssh_utils`` names). Importing this module does not import asyncssh.

Authentication is by public key only. The server's host key is always checked against ``known_hosts`` (flytekit
turns this check off; here only an explicit ``known_hosts=None`` does). Private keys are read where they are: a
key given as text (``FLYTE_SLURM_PRIVATE_KEY``) stays in memory and is never written to a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import msgspec

from flyte.extend import ConfigMeta

PRIVATE_KEY_ENV = "FLYTE_SLURM_PRIVATE_KEY"
PASSPHRASE_ENV = "FLYTE_SLURM_KEY_PASSPHRASE"
DEFAULT_KNOWN_HOSTS = ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")


@dataclass(frozen=True)
class SlurmCluster:
    """One login of one cluster: what a pooled SSH connection is shared by."""

    host: str
    port: int = 22
    username: str | None = None


class SSHConfig(msgspec.Struct, frozen=True, kw_only=True, metaclass=ConfigMeta):
    """SSH connection to the cluster's login node.

    - ``host``: name or address of the login node (required).
    - ``port``: SSH port (22).
    - ``username``: the login (default: the local user, as ssh does).
    - ``client_keys``: private key file(s) for public-key authentication; ``~`` is expanded. Left empty, the
      default keys (``~/.ssh/id_*``) and a running ssh-agent are tried. The key may also be given as text in the
      ``FLYTE_SLURM_PRIVATE_KEY`` environment variable (a Flyte secret); it is used from memory. An encrypted key's
      passphrase is read from ``FLYTE_SLURM_KEY_PASSPHRASE`` (never from the config, which travels with the task).
    - ``known_hosts``: file(s) of trusted host keys (default ``~/.ssh/known_hosts`` and
      ``/etc/ssh/ssh_known_hosts``). ``None`` turns host key verification off, explicitly: only on a network you
      trust.
    - ``connect_timeout``: seconds to establish the connection (30).
    """

    __positional__ = ("host", "port", "username", "client_keys", "known_hosts")

    host: str
    port: int = 22
    username: str | None = None
    client_keys: tuple[str, ...] = ()
    known_hosts: tuple[str, ...] | None = DEFAULT_KNOWN_HOSTS
    connect_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not isinstance(self.host, str) or not self.host.strip():
            raise ValueError(f"SSHConfig.host: expected the login node's name or address, got {self.host!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 < self.port < 65536:
            raise ValueError(f"SSHConfig.port: expected a port from 1 to 65535, got {self.port!r}")
        if self.username is not None and (not isinstance(self.username, str) or not self.username):
            raise ValueError(f"SSHConfig.username: expected a login name or None, got {self.username!r}")
        msgspec.structs.force_setattr(self, "client_keys", _paths("client_keys", self.client_keys))
        if self.known_hosts is not None:
            known = _paths("known_hosts", self.known_hosts)
            if not known:
                raise ValueError("SSHConfig.known_hosts: expected a file (or files) of trusted host keys; to turn host "
                                 "key verification off, pass known_hosts=None explicitly")
            msgspec.structs.force_setattr(self, "known_hosts", known)
        if isinstance(self.connect_timeout, bool) or not isinstance(self.connect_timeout, (int, float)) \
                or self.connect_timeout <= 0:
            raise ValueError(f"SSHConfig.connect_timeout: expected seconds > 0, got {self.connect_timeout!r}")

    @classmethod
    def of(cls, value: Any, owner: str = "ssh_config") -> SSHConfig:
        """An ``SSHConfig`` from itself or from flytekit's dict form (``{"host": ..., "client_keys": ...}``)."""
        if isinstance(value, SSHConfig):
            return value
        if isinstance(value, dict):
            if "host" not in value or not value["host"]:
                raise ValueError(f"{owner}: 'host' must be specified (the login node's name or address)")
            try:
                return cls(**value)
            except TypeError as exc:
                raise TypeError(f"{owner}: {exc}") from None
        raise TypeError(f"{owner}: expected an SSHConfig or a dict such as {{'host': 'login.example.com', "
                        f"'username': 'me', 'client_keys': '~/.ssh/id_ed25519'}}, got {type(value).__name__}")

    @classmethod
    def from_dict(cls, ssh_config: dict[str, Any]) -> SSHConfig:
        return cls.of(ssh_config)

    def to_dict(self) -> dict[str, Any]:
        return msgspec.structs.asdict(self)

    @property
    def cluster(self) -> SlurmCluster:
        return SlurmCluster(self.host, self.port, self.username)

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"

    def key_files(self) -> list[str]:
        return [os.path.expanduser(path) for path in self.client_keys]

    def known_hosts_files(self) -> list[str] | None:
        if self.known_hosts is None:
            return None
        return [os.path.expanduser(path) for path in self.known_hosts]


def _paths(field: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, os.PathLike)):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"SSHConfig.{field}: expected a path or a list of paths, got {type(value).__name__}")
    paths = []
    for item in value:
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item):
            raise TypeError(f"SSHConfig.{field}: expected paths, got {item!r}")
        paths.append(os.fspath(item))
    return tuple(paths)

"""The SSH side against the cluster's real sshd: the host key is verified (a wrong one refuses the connection),
unreachable hosts and bad keys fail with errors that say so, a key given as text is used from memory."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pytest
from _slurm_testkit import free_port

import flyte
from flyteplugins.slurm.function.task import SlurmFunctionConfig
from flyteplugins.slurm.script.task import (
    SlurmAuthenticationError,
    SlurmConfig,
    SlurmConnectionError,
    SlurmHostKeyError,
    SlurmShellTask,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def shell_task(cluster, **ssh):
    return SlurmShellTask(name="hello", task_config=SlurmConfig(ssh_config=cluster.ssh_config(**ssh),
                                                                remote_dir=cluster.remote_dir),
                          script="#!/bin/bash\necho hello\n")


def test_a_wrong_host_key_is_refused(cluster):
    wrong = str(Path(cluster.root, "ssh", "wrong_known_hosts"))
    with pytest.raises(SlurmHostKeyError) as caught:
        flyte.run(shell_task(cluster, known_hosts=wrong))
    message = str(caught.value)
    assert "host key is not trusted" in message and wrong in message and "ssh-keygen -R" in message
    assert cluster.active_jobs() == []


def test_no_known_hosts_file_is_an_error_not_a_silent_trust(cluster, tmp_path):
    missing = str(tmp_path / "known_hosts")
    with pytest.raises(SlurmHostKeyError, match="no known_hosts file .*ssh-keyscan -p"):
        flyte.run(shell_task(cluster, known_hosts=missing))


def test_host_key_check_off_only_when_asked(cluster, caplog):
    with caplog.at_level(logging.WARNING, logger="flyteplugins.slurm"):
        assert flyte.run(shell_task(cluster, known_hosts=None)).outputs()[0] is None
    assert "host key verification is off" in caplog.text


def test_an_unreachable_host(cluster):
    port = free_port()  # nothing listens there
    with pytest.raises(SlurmConnectionError, match=f"cannot reach root@127.0.0.1:{port}"):
        flyte.run(shell_task(cluster, port=port, known_hosts=None))


def test_a_key_the_server_does_not_know(cluster):
    stranger = str(Path(cluster.root, "ssh", "stranger_key"))
    with pytest.raises(SlurmAuthenticationError, match="public-key authentication failed") as caught:
        flyte.run(shell_task(cluster, client_keys=[stranger]))
    assert stranger in str(caught.value)


def test_a_key_file_that_is_missing_or_not_a_key(cluster, tmp_path):
    with pytest.raises(SlurmAuthenticationError, match="client_keys: .*nokey does not exist"):
        flyte.run(shell_task(cluster, client_keys=[str(tmp_path / "nokey")]))
    garbage = tmp_path / "garbage_key"
    garbage.write_text("not a key\n")
    with pytest.raises(SlurmAuthenticationError, match="garbage_key is not a private key"):
        flyte.run(shell_task(cluster, client_keys=[str(garbage)]))


def job_user() -> str:
    import getpass

    return getpass.getuser()


def test_a_key_given_as_text_is_used_from_memory(cluster, monkeypatch, tmp_path):
    monkeypatch.setenv("FLYTE_SLURM_PRIVATE_KEY", Path(cluster.user_key).read_text())
    monkeypatch.chdir(tmp_path)
    config = SlurmFunctionConfig(ssh_config=cluster.ssh_config(client_keys=[]), python=sys.executable,
                                 remote_dir=cluster.remote_dir)
    task = flyte.TaskEnvironment(name="slurm_keytext", plugin_config=config).task(job_user)
    assert flyte.run(task).outputs()[0] == cluster.username
    assert os.listdir(tmp_path) == []  # no key written to the working directory


async def test_commands_run_in_one_shell_each_in_isolation(cluster):
    from flyteplugins.slurm._connection import ClusterLink
    from flyteplugins.slurm.ssh_utils import SSHConfig

    link = ClusterLink(SSHConfig.of(cluster.ssh_config()))
    try:
        home = await link.home_dir()
        exited = await link.run("cd /; echo leaving; exit 5")
        assert (exited.exit_status, exited.stdout) == (5, "leaving\n")
        assert (await link.run("pwd")).stdout == home + "\n"  # the cd and the exit stayed in their subshell
        assert (await link.run("printf 'no newline'")).stdout == "no newline"
        assert (await link.run("cat")).stdout == ""  # stdin is /dev/null: nothing waits for input
        both = await link.run("echo out; echo err >&2; printf '\\001\\377'")
        assert (both.stdout, both.stderr) == ("out\n\x01\ufffd", "err\n")
        assert link.use_shell and len(cluster.ssh_sessions()) == 1
    finally:
        await link.close()

"""The Slurm plugin's configs, scripts and state parsing (no cluster needed): validation names the field and what
is allowed, placeholders are replaced by name only, every Slurm version's way of reporting a job is read."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import flyte
from flyte.io import Dir, File
from flyteplugins.slurm._script import function_script, interpolate, parse_job_id, sbatch_command
from flyteplugins.slurm._states import from_sacct, from_scontrol, from_squeue_json
from flyteplugins.slurm.function.task import SlurmFunctionConfig, SlurmFunctionTask, runtime_command
from flyteplugins.slurm.script.task import OutputLocation, SlurmConfig, SlurmScriptConfig, SlurmShellTask, SlurmTask
from flyteplugins.slurm.ssh_utils import SlurmCluster, SSHConfig

pytestmark = [pytest.mark.slurm]

SSH = {"host": "slurm-cluster.example.com", "username": "flyteuser", "client_keys": "~/.ssh/id_rsa"}


def test_ssh_config_from_flytekits_dict():
    config = SlurmFunctionConfig(ssh_config=SSH, sbatch_config={"time": "0-00:10", "nodes": "1"})
    ssh = config.ssh_config
    assert isinstance(ssh, SSHConfig)
    assert (ssh.host, ssh.port, ssh.username, ssh.client_keys) == ("slurm-cluster.example.com", 22, "flyteuser",
                                                                  ("~/.ssh/id_rsa",))
    assert ssh.known_hosts == ("~/.ssh/known_hosts", "/etc/ssh/ssh_known_hosts")  # verified by default
    assert ssh.cluster == SlurmCluster("slurm-cluster.example.com", 22, "flyteuser")


@pytest.mark.parametrize(("ssh", "error", "match"), [
    ({"username": "me"}, ValueError, "'host' must be specified"),
    ({"host": "h", "port": 0}, ValueError, r"SSHConfig.port: expected a port from 1 to 65535"),
    ({"host": "h", "known_hosts": []}, ValueError, r"known_hosts=None explicitly"),
    ({"host": "h", "client_keys": 3}, TypeError, r"SSHConfig.client_keys: expected a path"),
    ({"host": "h", "hostname": "x"}, TypeError, r"unknown argument\(s\) 'hostname'"),
    ("h", TypeError, r"expected an SSHConfig or a dict"),
])
def test_ssh_config_errors_name_the_field(ssh, error, match):
    with pytest.raises(error, match=match):
        SlurmConfig(ssh_config=ssh)


@pytest.mark.parametrize(("sbatch", "error", "match"), [
    ({"t": "5"}, ValueError, "not an sbatch long option name"),
    ({"wait": True}, ValueError, "not allowed: the plugin follows the job itself"),
    ({"exclusive": False}, ValueError, "False is not an sbatch value"),
    ({"time": ["5"]}, TypeError, "expected a string, a number or True"),
    ("--time=5", TypeError, "expected a dict of sbatch options"),
])
def test_sbatch_config_errors(sbatch, error, match):
    with pytest.raises(error, match=match):
        SlurmConfig(ssh_config=SSH, sbatch_config=sbatch)


def test_sbatch_config_is_normalized_and_quoted():
    config = SlurmConfig(ssh_config=SSH, sbatch_config={"--job-name": "my job", "nodes": 2, "exclusive": True},
                         batch_script_args=["--data", "/data/in put.csv", 3])
    assert config.sbatch_config == {"job-name": "my job", "nodes": "2", "exclusive": None}
    assert config.batch_script_args == ("--data", "/data/in put.csv", "3")
    command = sbatch_command("/runs/a b/job.sh", config.sbatch_config, config.batch_script_args, cwd="/runs/a b")
    assert command == ("cd '/runs/a b' && sbatch --parsable '--job-name=my job' --nodes=2 --exclusive "
                       "'/runs/a b/job.sh' --data '/data/in put.csv' 3")
    assert parse_job_id("1234\n") == "1234" and parse_job_id("77;cluster2") == "77"
    assert parse_job_id("sbatch: warning\n") is None


def test_function_config_template_needs_the_placeholder():
    with pytest.raises(ValueError, match=r"must contain \{task.fn\}"):
        SlurmFunctionConfig(ssh_config=SSH, script="#!/bin/bash\necho hi\n")
    with pytest.raises(ValueError, match="SlurmFunctionConfig.python"):
        SlurmFunctionConfig(ssh_config=SSH, python="")
    assert function_script(None, "run it") == "#!/bin/bash\nrun it\n"
    assert function_script("#!/bin/bash\n#SBATCH -J x\n{task.fn}\necho ${HOME}\n", "run it") == \
        "#!/bin/bash\n#SBATCH -J x\nrun it\necho ${HOME}\n"


def test_runtime_command_marks_the_action_and_quotes_paths():
    command = runtime_command("/opt/py env/bin/python", action="a1", task="/r/a 1/task.pkl", inputs="/r/i",
                              outputs="/r/o", raw_data="/r/raw", run_name="r1", bundle="/r/b.zip")
    assert command.startswith("FLYTE_SLURM_ACTION=a1 /opt/py env/bin/python -m flyte.runtime --task '/r/a 1/task.pkl' "
                              "--pickled-task")
    assert command.endswith("--action a1 --bundle /r/b.zip")


def test_script_config_needs_its_path():
    with pytest.raises(ValueError, match="batch_script_path: must be provided"):
        SlurmScriptConfig(ssh_config=SSH)
    config = SlurmScriptConfig(SSH, {"time": "0-01:00"}, ["--data", "/data/input.csv"], "/home/u/train.sh")
    assert config.batch_script_path == "/home/u/train.sh" and config.batch_script_args == ("--data", "/data/input.csv")


def test_interpolation_replaces_only_its_placeholders():
    script = "echo {inputs.x} > {outputs.y}; awk '{ print $1 }' f; echo ${HOME} {1..3} {inputs.flag}"
    text = interpolate(script, {"x": 3, "flag": True}, {"y": "/o/y.txt"}, "t")
    assert text == "echo 3 > /o/y.txt; awk '{ print $1 }' f; echo ${HOME} {1..3} true"
    with pytest.raises(ValueError, match=r"\{inputs.z\} not found; inputs: flag, x; outputs: y"):
        interpolate("{inputs.z}", {"x": 3, "flag": True}, {"y": "/o"}, "t")


def test_shell_task_interface_and_outputs():
    task = SlurmShellTask(name="my_inline_slurm_script", task_config=SlurmConfig(ssh_config=SSH),
                          script="echo {inputs.my_input} > {outputs.output_file}", inputs={"my_input": int},
                          output_locs=[OutputLocation(var="output_file", var_type=File, location="/tmp/o.txt")])
    assert task.name == "my_inline_slurm_script"
    assert task.interface.names == ["my_input"] and task.interface.annotations == {"my_input": int}
    assert task.interface.output is File
    assert task.custom_config()["output_locs"] == [{"var": "output_file", "var_type": "File",
                                                    "location": "/tmp/o.txt"}]
    pair = SlurmShellTask(name="pair", task_config=SlurmConfig(ssh_config=SSH), script="true", output_locs=[
        OutputLocation("a", File, "a.txt"), OutputLocation("b", Dir, "b")])
    assert pair.interface.output == tuple[File, Dir]
    bounded = task.override(timeout=30, retries=2)
    assert bounded.settings.timeout.max_runtime == 30 and bounded.settings.retries.count == 2
    assert task.settings.timeout is None and bounded.script == task.script
    with pytest.raises(TypeError, match="expected a SlurmConfig"):
        task.override(plugin_config=SlurmFunctionConfig(ssh_config=SSH))


@pytest.mark.parametrize(("make", "match"), [
    (lambda: SlurmShellTask(name="t", task_config=SlurmConfig(ssh_config=SSH), script="true",
                            output_locs=["/tmp/x"]), "every output must be an OutputLocation"),
    (lambda: OutputLocation(var="x", var_type=int, location="/tmp/x"), "only flyte.io.File and flyte.io.Dir"),
    (lambda: SlurmShellTask(name="t", task_config=SlurmConfig(ssh_config=SSH), script="#!/bin/bash"),
     "the script has no commands"),
    (lambda: SlurmShellTask(name="t", task_config=SlurmScriptConfig(ssh_config=SSH, batch_script_path="/x"),
                            script="true"), "a SlurmScriptConfig names a script already on the cluster"),
    (lambda: SlurmTask(name="t", task_config=SlurmConfig(ssh_config=SSH)), "expected a SlurmScriptConfig"),
    (lambda: SlurmTask(name="t", task_config=SlurmScriptConfig(ssh_config=SSH, batch_script_path="/x"), retry=1),
     r"unknown argument\(s\) \['retry'\]"),
])
def test_task_construction_errors(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


def test_function_tasks_use_the_function_template_and_script_configs_refuse_functions():
    env = flyte.TaskEnvironment(name="slurm_cfg", plugin_config=SlurmFunctionConfig(ssh_config=SSH))

    @env.task
    def f(x: int) -> int:
        return x

    assert isinstance(f, SlurmFunctionTask) and f.task_type == "slurm_fn"
    assert f.custom_config()["ssh_config"]["host"] == SSH["host"]
    shell_env = flyte.TaskEnvironment(name="slurm_cfg2", plugin_config=SlurmConfig(ssh_config=SSH))
    with pytest.raises(TypeError, match="SlurmConfig describes a batch script, not a function"):
        shell_env.task(lambda: None)


SQUEUE_22_05 = {"meta": {"Slurm": {"release": "22.05.8"}}, "errors": [], "jobs": [
    {"job_id": 7, "job_state": "RUNNING", "exit_code": 0, "state_reason": "None", "nodes": "vm"},
    {"job_id": 8, "job_state": "FAILED", "exit_code": 768, "state_reason": "NonZeroExitCode", "nodes": "vm"},
    {"job_id": 9, "job_state": "CANCELLED", "exit_code": 15, "state_reason": "None", "nodes": "vm"},
]}
SQUEUE_23_11 = {"jobs": [
    {"job_id": 11, "job_state": ["OUT_OF_MEMORY"], "state_reason": "OutOfMemory", "nodes": "n1",
     "exit_code": {"status": ["OUT_OF_MEMORY"], "return_code": {"set": True, "infinite": False, "number": 0},
                   "signal": {"id": {"set": True, "infinite": False, "number": 9}, "name": "KILL"}}},
    {"job_id": 12, "job_state": ["CANCELLED", "COMPLETING"], "exit_code": {"return_code": {"set": False}}},
]}


def test_squeue_json_of_each_version_is_read_for_the_right_job():
    running = from_squeue_json(json.dumps(SQUEUE_22_05), "7")
    assert (running.state, running.finished, running.started) == ("RUNNING", False, True)
    failed = from_squeue_json(json.dumps(SQUEUE_22_05), "8")
    assert (failed.state, failed.exit_code, failed.signal, failed.finished) == ("FAILED", 3, None, True)
    cancelled = from_squeue_json(json.dumps(SQUEUE_22_05), "9")
    assert (cancelled.state, cancelled.signal) == ("CANCELLED", 15)
    assert from_squeue_json(json.dumps(SQUEUE_22_05), "70") is None
    oom = from_squeue_json(json.dumps(SQUEUE_23_11), "11")
    assert (oom.state, oom.exit_code, oom.signal, oom.nodes, oom.finished) == ("OUT_OF_MEMORY", 0, 9, "n1", True)
    completing = from_squeue_json(json.dumps(SQUEUE_23_11), "12")
    assert completing.state == "CANCELLED" and not completing.finished  # still cleaning up


def test_scontrol_and_sacct_lines():
    line = ("JobId=42 JobName=my job name UserId=u(1) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) "
            "ExitCode=0:15 NodeList=n[1-2] StdErr=/home/u/err 42.txt StdOut=/home/u/out.txt\n")
    status = from_scontrol(line, "42")
    assert (status.state, status.exit_code, status.signal, status.reason, status.nodes) == \
        ("TIMEOUT", 0, 15, "TimeLimit", "n[1-2]")
    assert from_scontrol(line, "43") is None
    assert from_scontrol("slurm_load_jobs error: Invalid job id specified", "42") is None
    record = from_sacct("42|CANCELLED by 1000|0:15|n1\n42.batch|CANCELLED|0:15|n1\n", "42")
    assert (record.state, record.signal, record.nodes) == ("CANCELLED", 15, "n1")
    completed = from_sacct("5|COMPLETED|0:0|n1\n", "5")
    assert completed.succeeded


def test_importing_the_plugin_loads_no_ssh_library():
    code = ("import sys, flyte, flyteplugins.slurm, flyteplugins.slurm.function.task, "
            "flyteplugins.slurm.script.task; print(sorted(m for m in ('asyncssh', 'cryptography') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("state", "kind", "hint"), [
    ("TIMEOUT", "SlurmJobTimeoutError", "raise sbatch_config['time']"),
    ("OUT_OF_MEMORY", "SlurmOutOfMemoryError", "raise sbatch_config['mem']"),
    ("NODE_FAIL", "SlurmNodeFailError", "a node it ran on failed"),
    ("CANCELLED", "SlurmJobCancelledError", "cancelled outside this task"),
    ("FAILED", "SlurmJobError", None),
])
def test_job_states_become_errors_that_say_why(state, kind, hint):
    from flyte.errors import RuntimeUserError
    from flyteplugins.slurm._errors import job_error

    error = job_error("train (action a1)", "42", state, 0 if state != "FAILED" else 3, 9 if state == "CANCELLED"
                      else None, stderr_tail="last words", stderr_path="/home/u/slurm-42.out", merged=True)
    assert type(error).__name__ == kind and isinstance(error, RuntimeUserError) and error.code == state
    text = str(error)
    assert text.startswith(f"train (action a1): Slurm job 42 ended {state}")
    assert "Last lines of its output (stdout and stderr, /home/u/slurm-42.out):\nlast words" in text
    if hint:
        assert hint in text
    if state == "FAILED":
        assert "with exit code 3" in text
    if state == "CANCELLED":
        assert "killed by SIGKILL" in text
    assert not isinstance(error, TimeoutError)  # would read as the task's own timeout

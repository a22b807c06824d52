"""Calls that end without a Python exception to report, or never start, or start again:

    python ends.py TASK [ARG]

- exits: the process exits with code 3 (os._exit: no error document);
- killed: the process SIGKILLs itself;
- bad_name: an image name that cannot be parsed (InvalidImageName);
- needs_secret: reads a Secret ("late-creds") that may not exist yet (CreateContainerConfigError until it does);
- flaky: fails on its first attempt (a marker file, ARG, is missing), succeeds on its retry;
- plain: returns its input doubled (used with a quota that refuses its pod).

Prints ``RESULT <value>``, or ``ERROR <type> <code>`` and ``MESSAGE <text>`` and exits 1.
"""
import os
import signal
import sys

import flyte

env = flyte.TaskEnvironment(name="ends")
badly_named = flyte.TaskEnvironment(name="badly_named", image="Bad::Image")
with_late_secret = flyte.TaskEnvironment(name="late_secret", secrets=[flyte.Secret(key="token", group="late-creds")])


@env.task
async def exits(x: int) -> int:
    print("exiting with 3", flush=True)
    os._exit(3)


@env.task
async def killed(x: int) -> int:
    print("killing myself", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    return x


@badly_named.task
async def bad_name(x: int) -> int:
    return x


@with_late_secret.task
async def needs_secret(x: int) -> str:
    return f"token has {len(os.environ['LATE_CREDS_TOKEN'])} characters"


@env.task(retries=1)
async def flaky(marker: str) -> str:
    if not os.path.exists(marker):  # the first attempt: leave the marker and fail
        with open(marker, "w") as handle:
            handle.write("attempt 1 failed\n")
        raise RuntimeError("first attempt fails on purpose")
    return f"second attempt succeeded (attempt_number {flyte.ctx().attempt_number})"


@env.task
async def plain(x: int) -> int:
    return 2 * x


if __name__ == "__main__":
    flyte.init_from_config()
    name = sys.argv[1]
    arguments = {"flaky": {"marker": sys.argv[2] if len(sys.argv) > 2 else ""}}.get(name, {"x": 21})
    try:
        run = flyte.with_runcontext(mode="remote").run(globals()[name], **arguments)
    except Exception as exc:
        print(f"ERROR {type(exc).__name__} {getattr(exc, 'code', '')}")
        print(f"MESSAGE {exc}")
        sys.exit(1)
    print("RESULT", run.outputs()[0])

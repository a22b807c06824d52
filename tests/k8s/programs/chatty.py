"""A task whose log the caller follows: numbered lines over a few seconds, one with a character written in two
pieces (its UTF-8 bytes split across writes).

    python chatty.py
"""
import sys
import time

import flyte

env = flyte.TaskEnvironment(name="chatty")


@env.task
def chatty(lines: int) -> int:
    for i in range(lines):
        if i == lines // 2:
            sys.stdout.buffer.write(f"line {i} split ".encode() + "✓".encode()[:2])
            sys.stdout.flush()
            time.sleep(0.2)
            sys.stdout.buffer.write("✓".encode()[2:] + b"\n")
        else:
            sys.stdout.write(f"line {i}\n")
        sys.stdout.flush()
        time.sleep(0.1)
    return lines


if __name__ == "__main__":
    flyte.init_from_config()
    print("RESULT", flyte.with_runcontext(mode="remote").run(chatty, lines=30).outputs()[0])

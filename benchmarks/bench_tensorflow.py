"""TensorFlow plugin: a 2-worker ``MultiWorkerMirroredStrategy`` training as a task against the same two processes
started by hand with their ``TF_CONFIG``.

- raw:   two ``python script.py`` subprocesses, each with the TF_CONFIG of a two-worker cluster on free loopback ports,
         wall time until both exited (interpreter, TensorFlow's import, the collective, teardown).
- task:  ``flyte.run(task)`` whose two worker replicas run the same script: pickling the call, our runtime in each
         replica, TF_CONFIG, supervision, outputs and clean-up, all included.

Rounds alternate raw and task so machine noise hits both alike; figures are medians. Target: task/raw <= 1.15.
Run: ``python -m benchmarks.bench_tensorflow`` (``BENCH_TENSORFLOW_ROUNDS`` to change the 5 rounds).
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import flyte
from flyteplugins.tensorflow._cluster import free_ports
from flyteplugins.tensorflow.task import TfJob, Worker

SCRIPT = '''
import tensorflow as tf


def main():  # in a function, as scripts are written: TensorFlow's objects go before the interpreter's teardown
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(32,)), tf.keras.layers.Dense(8), tf.keras.layers.Dense(1)])
        optimizer = tf.keras.optimizers.SGD(0.01)
    x = tf.random.stateless_normal((512, 32), seed=(1, 2))
    data = tf.data.Dataset.from_tensor_slices((x, tf.reduce_sum(x, axis=1, keepdims=True))).repeat().batch(64)
    batches = iter(strategy.experimental_distribute_dataset(data))

    @tf.function
    def step(iterator):
        def replica_step(features, labels):
            with tf.GradientTape() as tape:
                errors = tf.reduce_sum(tf.square(model(features, training=True) - labels), axis=1)
                loss = tf.nn.compute_average_loss(errors, global_batch_size=64)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        return strategy.reduce("SUM", strategy.run(replica_step, args=next(iterator)), axis=None)

    for _ in range(50):
        step(batches)


main()
'''

# TensorFlow's notices, and the error a worker logs when worker 0, which hosts the coordination service, exits first.
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
env = flyte.TaskEnvironment(name="bench_tensorflow", plugin_config=TfJob(worker=Worker(replicas=2)))


@env.task
def run_script(path: str) -> None:
    runpy.run_path(path, run_name="__main__")


def raw_once(script: str) -> float:
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    started = time.perf_counter()
    processes = [
        # Each in a session of its own, as the replicas are (and as two terminals would start them): with the
        # kernel's autogroup scheduling a session is what gets a fair share of a busy machine.
        subprocess.Popen([sys.executable, script], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True, env={**os.environ, **QUIET, "TF_CONFIG": json.dumps(
                             {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})})
        for index in range(2)]
    codes = [process.wait() for process in processes]
    elapsed = time.perf_counter() - started
    assert codes == [0, 0], codes
    return elapsed


def task_once(script: str) -> float:
    started = time.perf_counter()
    flyte.with_runcontext(progress="quiet").run(run_script, script)
    return time.perf_counter() - started


def main() -> None:
    rounds = int(os.environ.get("BENCH_TENSORFLOW_ROUNDS", "5"))
    os.environ.update(QUIET)  # the replicas inherit it, as the raw processes get it
    directory = tempfile.mkdtemp(prefix="bench-tf-")
    script = os.path.join(directory, "mirrored.py")
    Path(script).write_text(SCRIPT)
    try:
        raw_once(script)  # warms the page cache for TensorFlow's files, for both variants alike
        raw, task = [], []
        for _ in range(rounds):
            raw.append(raw_once(script))
            task.append(task_once(script))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    raw_median, task_median = statistics.median(raw), statistics.median(task)
    print(f"tensorflow 2-worker MultiWorkerMirroredStrategy: by hand {raw_median:.2f}s  task {task_median:.2f}s  "
          f"ratio {task_median / raw_median:.2f}x (target <= 1.15x; {rounds} rounds, medians)")


if __name__ == "__main__":
    main()

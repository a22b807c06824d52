"""Real TensorFlow (CPU) in the replicas: a tiny Keras model trained with ``MultiWorkerMirroredStrategy`` on two
workers, a ``ParameterServerStrategy`` job (chief, parameter server, worker), and a worker failing while its peer waits
in a collective. Few steps on a four-weight model: the cost is TensorFlow's import in each replica."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _tf_testkit import alive, record, records

import flyte
from flyteplugins.tensorflow.task import PS, Chief, TfJob, Worker

pytestmark = [pytest.mark.tensorflow, pytest.mark.slow]

mirrored_env = flyte.TaskEnvironment(name="tf_mirrored", plugin_config=TfJob(worker=Worker(replicas=2)))
GLOBAL_BATCH = 8


def _data():
    import numpy as np

    x = np.arange(64, dtype="float32").reshape(16, 4) / 64.0
    return x, x.sum(axis=1, keepdims=True)


@mirrored_env.task
def train_mirrored(steps: int, directory: str, fail_at: int = -1) -> dict:
    """A custom loop (Keras 3's fit cannot reduce a multi-worker batch): each step all-reduces the gradients."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(1, kernel_initializer="zeros")])
        optimizer = tf.keras.optimizers.SGD(0.1)
    batches = iter(strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(_data()).repeat().batch(GLOBAL_BATCH)))

    @tf.function
    def step(iterator):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                errors = tf.reduce_sum(tf.square(model(x, training=True) - y), axis=1)
                loss = tf.nn.compute_average_loss(errors, global_batch_size=GLOBAL_BATCH)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        return strategy.reduce("SUM", strategy.run(replica_step, args=next(iterator)), axis=None)

    index = flyte.ctx().data["tf_replica_index"]
    losses = []
    for number in range(steps):
        if number == fail_at and index == 1:
            raise FloatingPointError(f"worker 1 diverged at step {number}")
        losses.append(float(step(batches)))
    weights = [w.ravel().tolist() for w in model.get_weights()]
    record(directory, weights=weights)
    return {"weights": weights, "losses": losses, "replicas": strategy.num_replicas_in_sync}


def test_mirrored_strategy_on_two_workers_returns_the_same_weights_on_both(run_name, tmp_path):
    out = flyte.with_runcontext(name=run_name).run(train_mirrored, 5, str(tmp_path)).outputs()[0]
    assert out["replicas"] == 2  # both workers joined the collective through their TF_CONFIG
    assert out["losses"][-1] < out["losses"][0] and any(w != 0.0 for w in out["weights"][0])
    seen = records(tmp_path)
    assert sorted(seen) == ["worker-0", "worker-1"]
    assert seen["worker-0"]["weights"] == seen["worker-1"]["weights"] == out["weights"]  # worker 0's value, in sync


def test_a_worker_failing_mid_training_stops_its_waiting_peer(run_name, tmp_path):
    started = time.monotonic()
    with pytest.raises(FloatingPointError, match="worker 1 diverged at step 2") as info:
        flyte.with_runcontext(name=run_name).run(train_mirrored, 50, str(tmp_path), fail_at=2)
    # Worker 0 was left waiting in step 2's all-reduce for a peer that is gone: stopped, not waited for.
    assert time.monotonic() - started < 120
    notes = "\n".join(info.value.__notes__)
    assert "replica worker 1 (pid" in notes and "failed with exit code 1" in notes
    assert records(tmp_path) == {}


parameter_server_env = flyte.TaskEnvironment(name="tf_ps", plugin_config=TfJob(chief=Chief(), ps=PS(),
                                                                                worker=Worker(replicas=1)))


@parameter_server_env.task
def train_with_parameter_server(steps: int, directory: str) -> dict:
    """TensorFlow's own recipe: parameter servers and workers serve; the chief coordinates the training."""
    import tensorflow as tf

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type in ("worker", "ps"):
        server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                      task_index=resolver.task_id, protocol="grpc", start=True)
        record(directory)
        server.join()  # until the job ends
    strategy = tf.distribute.ParameterServerStrategy(resolver)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(1, kernel_initializer="zeros")])
        optimizer = tf.keras.optimizers.SGD(0.1)
    batches = iter(coordinator.create_per_worker_dataset(
        lambda: tf.data.Dataset.from_tensor_slices(_data()).repeat().batch(GLOBAL_BATCH)))

    @tf.function
    def step(iterator):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.reduce_sum(tf.square(model(x, training=True) - y), axis=1))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        return strategy.run(replica_step, args=next(iterator))

    results = [coordinator.schedule(step, args=(batches,)) for _ in range(steps)]
    coordinator.join()
    record(directory)
    return {"losses": [float(r.fetch()) for r in results], "devices": sorted({v.value.device for v in model.variables}),
            "weights": [w.ravel().tolist() for w in model.get_weights()]}


def test_parameter_server_strategy_with_a_chief_a_ps_and_a_worker(run_name, tmp_path):
    out = flyte.with_runcontext(name=run_name).run(train_with_parameter_server, 5, str(tmp_path)).outputs()[0]
    assert out["devices"] and all("/job:ps/replica:0/task:0" in device for device in out["devices"])
    assert len(out["losses"]) == 5 and out["losses"][-1] < out["losses"][0]
    seen = records(tmp_path)
    assert sorted(seen) == ["chief-0", "ps-0", "worker-0"]
    # The servers served until the chief was done, then were stopped with the job.
    assert not any(alive(entry["pid"]) for entry in seen.values())
    assert json.loads(seen["ps-0"]["tf_config"])["task"] == {"type": "ps", "index": 0}
    assert Path(tmp_path, "chief-0.json").exists()

"""Multi-worker data-parallel training on this machine with the TensorFlow plugin (CPU).

Run: ``python examples/tensorflow_example.py``. Two worker replicas each get the ``TF_CONFIG`` the Kubeflow training
operator would give them, so ``MultiWorkerMirroredStrategy`` finds its cluster; the task returns worker 0's value.
The task is defined in ``__main__`` and reaches the replicas by value: no main guard is needed.
"""

from __future__ import annotations

import flyte
from flyteplugins.tensorflow.task import TfJob, Worker

# TensorFlow on CPU announces oneDNN and its logging setup in every replica; these keep the output to the result.
env = flyte.TaskEnvironment(name="tf_example", plugin_config=TfJob(worker=Worker(replicas=2)),
                            env_vars={"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"})


@env.task
def train(steps: int, lr: float = 0.5) -> dict:
    """Fit y = x1 + x2 + x3 + x4 with a one-unit Keras model; every step all-reduces the two workers' gradients."""
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # the cluster and this replica's place, from TF_CONFIG
    global_batch = 16
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(4,)), tf.keras.layers.Dense(1, use_bias=False)])
        optimizer = tf.keras.optimizers.SGD(lr)
    x = tf.random.stateless_uniform((256, 4), seed=(0, 0), minval=-1.0, maxval=1.0)
    data = tf.data.Dataset.from_tensor_slices((x, tf.reduce_sum(x, axis=1, keepdims=True))).repeat().batch(global_batch)
    batches = iter(strategy.experimental_distribute_dataset(data))  # each worker reads its own shard

    @tf.function
    def step(iterator):
        def replica_step(features, labels):
            with tf.GradientTape() as tape:
                errors = tf.reduce_sum(tf.square(model(features, training=True) - labels), axis=1)
                loss = tf.nn.compute_average_loss(errors, global_batch_size=global_batch)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))
            return loss

        return strategy.reduce("SUM", strategy.run(replica_step, args=next(iterator)), axis=None)

    for _ in range(steps):
        loss = float(step(batches))
    replica = flyte.ctx().data  # which replica this is: its type and index
    return {"weights": [round(float(w), 3) for w in model.get_weights()[0].ravel()], "loss": round(loss, 6),
            "workers": strategy.num_replicas_in_sync,
            "replica": f"{replica['tf_replica_type']} {replica['tf_replica_index']}"}


result = flyte.run(train, 60).outputs()[0]
print(result)
assert result["workers"] == 2 and result["replica"] == "worker 0", result
assert all(abs(w - 1.0) < 0.05 for w in result["weights"]), result

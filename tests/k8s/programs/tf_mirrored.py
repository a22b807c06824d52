"""A TensorFlow job of a chief and a worker training one tiny Keras model with MultiWorkerMirroredStrategy. Locally
two replica processes; on Kubernetes a TFJob whose operator gives each pod its TF_CONFIG; the chief's value is the
task's."""
import json

import flyte
from flyteplugins.tensorflow.task import Chief, TfJob, Worker

env = flyte.TaskEnvironment(name="tf_mw", plugin_config=TfJob(chief=Chief(), worker=Worker(replicas=1)),
                            env_vars={"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0"})


@env.task
def train(steps: int) -> dict:
    import os

    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    with strategy.scope():
        model = tf.keras.Sequential([tf.keras.Input(shape=(2,)), tf.keras.layers.Dense(1, kernel_initializer="zeros")])
        optimizer = tf.keras.optimizers.SGD(0.2)
    x = tf.constant([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.5, 0.5]] * 2)
    data = tf.data.Dataset.from_tensor_slices((x, tf.reduce_sum(x, axis=1, keepdims=True))).repeat().batch(4)
    batches = iter(strategy.experimental_distribute_dataset(data))

    @tf.function
    def step(iterator):
        def replica_step(features, labels):
            with tf.GradientTape() as tape:
                errors = tf.reduce_sum(tf.square(model(features, training=True) - labels), axis=1)
                loss = tf.nn.compute_average_loss(errors, global_batch_size=4)
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables, strict=True))

        strategy.run(replica_step, args=next(iterator))

    for _ in range(steps):
        step(batches)
    cluster = json.loads(os.environ["TF_CONFIG"])["cluster"]
    data = flyte.ctx().data
    return {"replicas": strategy.num_replicas_in_sync, "cluster": sorted(cluster),
            "replica": f"{data['tf_replica_type']} {data['tf_replica_index']}",
            "weights": [round(float(w), 4) for v in model.get_weights() for w in v.ravel()]}


if __name__ == "__main__":
    flyte.init_from_config()
    print(json.dumps(flyte.run(train, steps=5).outputs()[0], sort_keys=True))

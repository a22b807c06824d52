"""Spark plugin: PySpark tasks with a managed SparkSession (embedded, or attached to a standalone cluster) and
spark-submit of JVM applications. The public surface is :mod:`flyteplugins.spark.task`."""

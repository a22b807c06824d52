"""Spark plugin: PySpark tasks with a managed SparkSession (embedded, or attached to a standalone cluster),
spark-submit of JVM applications, and Spark tasks run on Databricks (``DatabricksV2``). ``from flyteplugins.spark
import Spark`` as with flyte-sdk's plugin; importing it does not import pyspark. Spark DataFrames cross task
boundaries as Parquet without registration: ``register_spark_df_transformers()`` exists for programs that call it,
and does nothing more."""

from .task import Databricks, DatabricksV2, GenericSparkConf, PysparkFunctionTask, Spark


def register_spark_df_transformers() -> None:
    """flyte-sdk registers its Spark DataFrame encoders here; ours are registered when the plugin is imported."""


__all__ = ["Databricks", "DatabricksV2", "GenericSparkConf", "PysparkFunctionTask", "Spark",
           "register_spark_df_transformers"]

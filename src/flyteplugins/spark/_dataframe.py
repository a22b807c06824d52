"""Spark DataFrames as task inputs and outputs: written as Parquet under the run's raw data path, read back lazily.

A DataFrame lives in one session's JVM and cannot cross a task boundary as is. The type encoder writes it to
``<raw data path>/spark-dataframes/<id>.parquet`` and passes the path; decoding reads the path with the live session.
The receiving Spark task may restart the session (other static settings) after its inputs were decoded, so its
template re-reads any input DataFrame bound to another session (:func:`rebind`). Where no session is live (a plain
task receiving a DataFrame after the engine stopped), decoding gives a :class:`ParquetDataFrame` that can be read
with pandas or handed to a later Spark task. A run's final output reaches the caller as a pandas DataFrame: the
run's end stops the session it was bound to.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from flyte.extend import TypeEncoder, current_context, live_engine

from ._errors import detach
from ._session import ENGINE_KIND

# Set on DataFrames read from Parquet by the decoder: passing one on again reuses the file instead of rewriting it.
_PATH_ATTR = "_flyte_parquet_path"


class ParquetDataFrame:
    """A DataFrame output that is stored as Parquet and was decoded where no Spark session is running."""

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def to_pandas(self) -> Any:
        import pandas as pd

        return pd.read_parquet(self.path)

    def to_spark(self, session: Any) -> Any:
        return read(session, self.path)

    def __repr__(self) -> str:
        return f"ParquetDataFrame({self.path!r})"


def read(session: Any, path: str) -> Any:
    frame = session.read.parquet(path)
    frame.__dict__[_PATH_ATTR] = path
    return frame


def _live_session() -> Any:
    live = live_engine(ENGINE_KIND)
    if live is None or live[1].stopped:
        return None
    return live[1].session


def encode(frame: Any, raw_data_path: str) -> bytes:
    stored = frame.__dict__.get(_PATH_ATTR)  # not getattr: DataFrame.__getattr__ would resolve it as a column
    if stored:
        return str(stored).encode()
    path = os.path.join(raw_data_path, "spark-dataframes", f"{uuid.uuid4().hex}.parquet")
    try:
        frame.write.parquet(path)
    except Exception as error:
        detach(error)
        raise
    return path.encode()


def decode(payload: bytes, raw_data_path: str) -> Any:
    path = payload.decode()
    if current_context.get() is None:
        # A run's own output, handed to code outside any task: the run stops its session (and removes the Parquet
        # copy) as it ends, so a Spark DataFrame would be dead by the time it is used. The data as pandas is not.
        import pandas as pd

        return pd.read_parquet(path)
    session = _live_session()
    return ParquetDataFrame(path) if session is None else read(session, path)


def rebind(value: Any, session: Any) -> Any:
    """``value`` made usable in ``session``: a stored DataFrame of another (or no) session is read again."""
    if isinstance(value, ParquetDataFrame):
        return read(session, value.path)
    state = getattr(value, "__dict__", None)
    if state is not None and state.get(_PATH_ATTR) and getattr(value, "sparkSession", session) is not session:
        return read(session, state[_PATH_ATTR])
    return value


DATAFRAME_ENCODER = TypeEncoder(
    name="spark-dataframe-parquet",
    type_names=("pyspark.sql.dataframe.DataFrame", "flyteplugins.spark._dataframe.ParquetDataFrame"),
    encode=lambda value, raw: encode(value, raw) if not isinstance(value, ParquetDataFrame) else value.path.encode(),
    decode=decode,
)

"""``flyte.io.DataFrame``: a data frame passed between tasks, opened as the type the reader wants.

``DataFrame.wrap_df(frame)`` wraps a pandas or pyarrow table (or a Spark DataFrame) without writing it;
``await DataFrame.from_local(frame)`` writes it as Parquet into the run's data directory;
``DataFrame.from_existing_remote(uri)`` refers to Parquet (or CSV) written elsewhere. A reader calls
``await df.open(pd.DataFrame).all()`` (``all_sync()`` in sync code) or ``pa.Table``; Spark DataFrames are read through
the task's session. Across task boundaries a wrapped frame travels with the value; a written one by its URI.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ._paths import is_object, local, new_path, offloaded, upload, write_staging


class DataFrame:
    """A data frame by value (``val``) or by reference (``uri`` + ``format``)."""

    def __init__(self, uri: str | None = None, format: str | None = "parquet", hash: str | None = None,
                 val: Any = None) -> None:
        self.uri = uri
        self.format = format or "parquet"
        self.hash = hash
        self._val = val
        self._open_as: type | None = None

    # -- making ---------------------------------------------------------------------------------------------------
    @classmethod
    def wrap_df(cls, val: Any = None, uri: str | None = None) -> DataFrame:
        """Wrap a native frame (pandas, pyarrow, Spark) without writing it."""
        if val is None and uri is None:
            raise ValueError("DataFrame.wrap_df: give a data frame (val) or a uri")
        return cls(uri=uri, val=_plain(val))

    @classmethod
    def from_df(cls, val: Any = None, uri: str | None = None) -> DataFrame:
        """flyte-sdk's older name of :meth:`wrap_df`."""
        return cls.wrap_df(val, uri)

    @classmethod
    def from_local_sync(cls, df: Any, columns: Any = None, remote_destination: str | None = None,
                        hash_method: Any = None) -> DataFrame:
        """Write ``df`` as Parquet (to ``remote_destination``, else the run's data directory)."""
        import pyarrow.parquet as pq

        table = _to_arrow(_plain(df))
        if columns:
            table = table.select(list(columns))
        to_store = remote_destination is not None and is_object(remote_destination)
        if to_store:
            target = write_staging(remote_destination)  # type: ignore[arg-type]
        else:
            target = local(remote_destination) if remote_destination else new_path("data.parquet")
        target.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, target)
        if to_store:
            return cls(uri=upload(target, remote_destination), format="parquet")  # type: ignore[arg-type]
        return cls(uri=str(target), format="parquet")

    @classmethod
    async def from_local(cls, df: Any, columns: Any = None, remote_destination: str | None = None,
                         hash_method: Any = None) -> DataFrame:
        import anyio

        return await anyio.to_thread.run_sync(lambda: cls.from_local_sync(df, columns, remote_destination))

    @classmethod
    def from_existing_remote(cls, remote_path: str, format: str | None = None, **kwargs: Any) -> DataFrame:
        return cls(uri=remote_path, format=format or ("csv" if remote_path.endswith(".csv") else "parquet"))

    # -- reading --------------------------------------------------------------------------------------------------
    @property
    def val(self) -> Any:
        return self._val

    def open(self, dataframe_type: type) -> DataFrame:
        """Say what ``all()`` returns: ``pd.DataFrame``, ``pa.Table`` or ``pyspark.sql.DataFrame``."""
        self._open_as = dataframe_type
        return self

    def all_sync(self) -> Any:
        target = self._open_as
        if self._val is not None:
            return _convert(self._val, target)
        if self.uri is None:
            raise ValueError("DataFrame: neither a value nor a uri")
        return _convert(_read(self.uri, self.format), target)

    async def all(self) -> Any:
        import anyio

        return await anyio.to_thread.run_sync(self.all_sync)

    async def iter(self) -> AsyncIterator[Any]:
        """An async iterator over the frame (here: the whole frame once, as the open type)."""
        value = await self.all()

        async def one() -> AsyncIterator[Any]:
            yield value

        return one()

    def __repr__(self) -> str:
        kind = type(self._val).__name__ if self._val is not None else None
        return f"DataFrame(uri={self.uri!r}, format={self.format!r}" + (f", val={kind})" if kind else ")")


def _getstate(self: DataFrame) -> dict[str, Any]:
    # Crossing to another machine in a remote run: a frame written locally travels as the object it is uploaded to.
    state = dict(self.__dict__)
    if state.get("uri"):
        state["uri"] = offloaded(state["uri"])
    return state


DataFrame.__getstate__ = _getstate  # type: ignore[method-assign,assignment]


def _plain(value: Any) -> Any:
    return value.all_sync() if isinstance(value, DataFrame) else value


def _read(uri: str, format: str) -> Any:
    path = local(uri)
    if format == "csv":
        import pyarrow.csv as pacsv

        return pacsv.read_csv(path)
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _to_arrow(value: Any) -> Any:
    import pyarrow as pa

    if isinstance(value, pa.Table):
        return value
    kind = f"{type(value).__module__}.{type(value).__name__}"
    if kind.startswith("pyspark.sql"):
        value = value.toPandas()
    return pa.Table.from_pandas(value, preserve_index=False)


def _convert(value: Any, target: type | None) -> Any:
    if target is None or isinstance(value, target):
        return value
    name = f"{target.__module__}.{target.__name__}"
    if name.startswith("pyarrow"):
        return _to_arrow(value)
    if name.startswith("pandas"):
        kind = f"{type(value).__module__}.{type(value).__name__}"
        if kind.startswith("pyspark.sql"):
            return value.toPandas()
        return _to_arrow(value).to_pandas()
    if name.startswith("pyspark.sql"):
        from pyspark.sql import SparkSession

        session = SparkSession.getActiveSession()
        if session is None:
            raise RuntimeError("DataFrame.open(pyspark DataFrame): no active Spark session (open it in a Spark task)")
        return session.createDataFrame(_convert(value, __import__("pandas").DataFrame))
    raise TypeError(f"DataFrame.open({target.__name__}): supported types are pandas.DataFrame, pyarrow.Table and "
                    "pyspark.sql.DataFrame")

"""``flyte.io``: files, directories and data frames passed between tasks, flyte-sdk's API with its sync and async
forms (``File.from_local`` / ``from_local_sync``, ``open`` / ``open_sync``, ``Dir.walk`` / ``walk_sync``,
``DataFrame.wrap_df(...).open(pd.DataFrame).all()``...).

Where data goes: a value made inside a run (``File.new_remote()``, ``from_local(..., remote_destination=None)`` of a
``DataFrame``) lives under the run's record directory (``<runs dir>/<run>/data``, see ``flyte._records``), so a
``File`` returned by a run can still be read after it ended. ``File.from_local(path)`` keeps the local path, as
flyte-sdk does in local mode. Local paths and ``file://`` work; object-store URIs are for the Kubernetes tier.
"""

from __future__ import annotations

from typing import Any

from ._dir import Dir, EmptyDir
from ._file import File, HashFunction

PARQUET = "parquet"

__all__ = ["PARQUET", "DataFrame", "Dir", "EmptyDir", "File", "HashFunction"]


def __getattr__(name: str) -> Any:
    if name == "DataFrame":  # its module knows pandas and pyarrow (imported only when a frame is converted)
        from ._dataframe import DataFrame

        return DataFrame
    raise AttributeError(f"module 'flyte.io' has no attribute {name!r}")

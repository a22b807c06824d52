"""docs/flyte2-compatibility.md lists every public name of flyte-sdk 2.12.1's modules (the lists below were read from
the released wheels, flyte==2.12.1 and flyteplugins-*==2.12.1), and every name it says exists here does."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "flyte2-compatibility.md"

FLYTE_SDK_2_12 = {
    "flyte": """AMD_GPU APPLE_SILICON GPU HABANA_GAUDI TPU AppHandle AsyncFunctionTaskTemplate Backoff BaseCheckpoint Cache
        CachePolicy CacheRequest Checkpoint ConditionWebhook Cron Device DeviceClass Documentation Environment
        FixedRate Image ImageBuild Link Neuron OnArtifact PodTemplate Resources RetryStrategy ReusePolicy Secret
        SecretRequest TaskEnvironment TaskTemplate Timeout TimeoutType Trigger TriggerTime TriggeredArtifact
        TriggeredPartition __version__ build build_images ctx current_domain current_project custom_context deploy
        get_custom_context group init init_from_api_key init_from_config init_in_cluster init_passthrough
        is_control_plane_available latest_checkpoint load_interactive_ctx load_plugin_config logger map
        new_condition rerun run run_python_script serve system_logger trace version with_runcontext
        with_servecontext""",
    "flyte.extend": """PRIMARY_CONTAINER_DEFAULT_NAME Architecture AsyncFunctionTaskTemplate RuntimeTaskTemplate TaskTemplate
        ImageBuildEngine ImageBuilder ImageChecker TaskPluginRegistry download_code_bundle
        get_proto_extended_resources get_proto_resources is_initialized lazy_module pod_spec_from_resources""",
    "flyte.io": "PARQUET DataFrame Dir EmptyDir File HashFunction",
    "flyteplugins.spark": "ParquetToSparkDecoder Spark SparkToParquetEncoder register_spark_df_transformers",
    "flyteplugins.ray": "AutoscalerOptionsConfig HeadNodeConfig RayJobConfig WorkerNodeConfig",
    "flyteplugins.dask": "Dask Scheduler WorkerGroup",
    "flyteplugins.pytorch": "Elastic",
}
STATUSES = {"works", "differs", "backend", "absent"}


def _tables() -> dict[str, dict[str, str]]:
    tables: dict[str, dict[str, str]] = {}
    section = None
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            tables[section] = {}
        elif section and line.startswith("| ") and not line.startswith(("| name", "| ---")):
            cells = [cell.strip() for cell in line.strip("|").split("|")]
            tables[section][cells[0].replace("\\_", "_")] = cells[1]
    return tables


@pytest.mark.parametrize("module_name", sorted(FLYTE_SDK_2_12))
def test_every_flyte_sdk_name_is_listed_with_a_status_and_exists_unless_absent(module_name):
    listed = _tables()[module_name]
    expected = set(FLYTE_SDK_2_12[module_name].split())
    assert set(listed) == expected, f"missing: {sorted(expected - set(listed))}, extra: {sorted(set(listed) - expected)}"
    assert set(listed.values()) <= STATUSES, set(listed.values()) - STATUSES
    module = importlib.import_module(module_name)
    for name, status in listed.items():
        exists = hasattr(module, name)
        assert exists == (status != "absent"), f"{module_name}.{name} is marked {status}, but exists={exists}"

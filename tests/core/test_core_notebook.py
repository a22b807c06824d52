"""Executes examples/notebook.ipynb in a real Jupyter kernel (nbclient + ipykernel) and checks its outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "notebook.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
        elif output.get("output_type") == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
    return "".join(parts).strip()


@pytest.mark.slow
def test_notebook_runs_in_a_real_kernel():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}},
                   ).execute()
    outputs = [_text(cell) for cell in notebook.cells if cell.cell_type == "code"]
    assert outputs[2] == "succeeded 285"
    assert outputs[3] == "14"
    assert outputs[4] == "7 3"
    assert outputs[5] == "144"

"""notebooks/explore.ipynb runs top to bottom (on datasets/sample, through `keyfarm link`)."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore.ipynb"


@pytest.mark.slow
def test_explore_notebook_runs_on_the_sample(monkeypatch):
    monkeypatch.delenv("KEYFARM_OUT_DIR", raising=False)
    monkeypatch.delenv("MPLBACKEND", raising=False)   # the kernel's inline backend draws PNGs
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # the native python3 kernel of the interpreter running the tests (the venv's), no kernelspec install
    NotebookClient(nb, kernel_name="python3", timeout=300,
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    rendered = "".join(str(o.get("data", {}).get("text/html", "")) for o in outputs)
    assert "<iframe srcdoc=" in rendered and "vis.Network" in rendered
    assert any("image/png" in o.get("data", {}) for o in outputs)   # the matplotlib figure

"""examples/quickstart.ipynb runs from top to bottom in a real kernel, and shows what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


@pytest.mark.sample
def test_quickstart_notebook_runs_and_shows_images_and_tables(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    cells = [c for c in nb.cells if c.cell_type == "code"]
    outputs = [[o for o in c.outputs if o.output_type in ("execute_result", "display_data")]
               for c in cells]  # fmt: skip
    assert all(o.output_type != "error" for c in cells for o in c.outputs)
    assert all(outputs), "every code cell ends in a result"
    data = [o[-1]["data"] for o in outputs]
    first = data[0]["text/plain"]
    assert first.startswith("['") and "embeddings" in first  # ckpt.names()[:5]
    assert "image/png" in data[1] and "text/html" in data[1]  # show(...)
    run_html = data[2]["text/html"]  # the run's notebook view: counts and the summary tables
    assert "finding groups" in run_html and "residual dimensions" in run_html
    assert data[2]["text/plain"].startswith("<striate.Run of ")  # the short repr
    assert "<table" in data[3]["text/html"] and "residual dim" not in data[3]["text/html"]
    assert "bias[223]" in data[3]["text/html"]  # MiniLM's strongest: LayerNorm bias at dim 223
    assert "residual_dim" in data[4]["text/html"]
    assert "attn_q" in data[5]["text/plain"] or "ffn_in" in data[5]["text/plain"]
    assert "image/png" in data[6]  # run.show of the strongest finding's tensor
    assert list(tmp_path.iterdir()) == []  # the notebook writes nothing

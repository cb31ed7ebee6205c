"""What a new user meets first: paths that resolve the right way, help that tells the truth, a
terminal summary that fits the terminal, and a run that prints short."""

from __future__ import annotations

import io
import re
from pathlib import Path

import planted
import pytest
from rich.console import Console
from typer.testing import CliRunner

from striate.checkpoint import open_checkpoint
from striate.checkpoint.opening import looks_like_hub_id
from striate.cli import app
from striate.display import SummaryTable
from striate.errors import StriateError
from striate.scan import ImagesConfig, ScanConfig, scan
from striate.terminal import summary_table

COMMANDS = ["info", "scan", "ffn", "banding", "track", "experiment", "lab", "view", "report",
            "samples"]  # fmt: skip


def test_a_mistyped_path_is_a_path_never_a_hub_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "runs" / "minilm").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(StriateError) as caught:
        open_checkpoint("runs/minlm")
    text = str(caught.value)
    assert "no such file or folder" in text and "Hugging Face" not in text
    assert "runs/ has no 'minlm'; did you mean 'minilm'?" in text
    with pytest.raises(StriateError) as caught:
        open_checkpoint("models/model.safetensors")
    assert "./ exists but has no 'models'" in str(caught.value)
    with pytest.raises(StriateError, match=r"runs/minilm/ exists but has no 'x\.gguf'"):
        open_checkpoint("runs/minilm/x.gguf")
    assert not looks_like_hub_id("runs/minlm")  # `runs` is a local folder
    assert not looks_like_hub_id("org/model.safetensors")  # a weight file's suffix
    assert not looks_like_hub_id("./org/name") and not looks_like_hub_id("a/b/c")
    assert looks_like_hub_id("HuggingFaceTB/SmolLM2-135M")
    with pytest.raises(StriateError, match="not in the local Hugging Face cache"):
        open_checkpoint("nobody-here/no-such-model")


def test_info_on_a_run_directory_describes_its_model(tmp_path: Path) -> None:
    truth = planted.llama(tmp_path / "model")
    scan(truth.path, tmp_path / "run", config=ScanConfig(images=ImagesConfig(enabled=False)))
    result = CliRunner().invoke(app, ["info", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'run'} is a scan run directory; its model: {truth.path}" in result.output
    assert "model.layers.0.mlp.down_proj.weight" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_tells_the_truth(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "<bool>" not in text  # flags are flags
    options = [line for line in text.splitlines() if line.lstrip().startswith("-")]
    assert options and all(not re.search(r"<(str|int|path|list\[str\])>", o) for o in options)
    if command in ("scan", "track", "lab"):
        assert 'pip install "striate[ray]"' in " ".join(text.split())
    if command in ("scan", "track", "experiment", "lab"):
        assert "--set KEY=VALUE" in text or command == "track"
        assert "-o, --out DIR" in text


def _long_summary() -> SummaryTable:
    names = ["model.layers.29.self_attn.q_proj.weight", "residual dim 507",
             "model.embed_tokens.weight.with.a.long.suffix"]  # fmt: skip
    rows = [[n, "165 line, 40 hotspot, 12 norm_outlier", "30", "0-29", "41.5",
             f"{n}: loud column 507: scale 3.1x the median line (z=41, expected 1e-40)"]
            for n in names]  # fmt: skip
    head = ["group", "findings", "tensors", "layers", "significance", "strongest"]
    return SummaryTable("groups", "strongest of 3 finding groups", head, rows, 3)


@pytest.mark.parametrize("width", [80, 120])
def test_the_terminal_summary_fits_and_never_breaks_a_name(width: int) -> None:
    summary = _long_summary()
    console = Console(width=width, file=io.StringIO(), record=True)
    console.print(summary_table(summary, width))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    for row in summary.rows:  # each name whole, on one line
        assert any(row[0] in line for line in lines), row[0]
    assert sum("…" in line for line in lines) >= 3  # the details are shortened, not wrapped
    assert len(lines) == 4 + 3 + 1  # title, 3 header lines, 3 rows, bottom border
    if width >= 120:
        assert "layers" in lines[2] and "signif." in lines[2]


def test_a_run_prints_short(tmp_path: Path) -> None:
    truth = planted.llama(tmp_path / "model")
    run = scan(truth.path, config=ScanConfig(images=ImagesConfig(enabled=False)))
    assert repr(run).startswith(f"<striate.Run of {truth.path / 'model.safetensors'} (llama): ")
    assert f"{len(run.tensors)} tensors, {len(run.findings)} findings, 0 failed" in repr(run)
    lines = str(run).splitlines()
    assert lines[0] == repr(run) and len(lines) <= 13 and len(str(run)) < 2000
    assert any(line.startswith("  residual dim ") for line in lines)

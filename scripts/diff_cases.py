"""The real cases of docs/diff.md: run them, and write or check the numbers the page quotes.

    python scripts/diff_cases.py run [--lottery DIR] [--keep DIR]
                                # MiniLM against its Q8_0 and Q4_0 GGUF files, and the lottery
                                # experiment's dense network at its first checkpoint against
                                # its last; prints the numbers and rewrites docs/diff.md's
                                # generated block (its numbers live there, as JSON)
    python scripts/diff_cases.py write   # the block again from the JSON it holds
    python scripts/diff_cases.py check   # exit 1 if the block is not what its JSON gives

The GGUF files are real llama.cpp files written with the `gguf` package: `general.architecture`
bert, the tensors under llama.cpp's names (`gguf.TensorNameMap`), every matrix quantized
(`gguf.quants.quantize`, as llama.cpp's converter does with `--outtype q8_0`; Q4_0 likewise),
vectors kept in float32. The lottery experiment (`striate experiment lottery --preset quick`,
about a minute on 2 cores) trains a LeNet-style MLP on sklearn's digits; its checkpoints are
checkpoints/dense/step_*.safetensors. No number on the page is typed by hand: `run` measures
them, `render` lays them out, and tests/test_diff_cli.py checks the page against its JSON.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PAGE = Path(__file__).resolve().parent.parent / "docs" / "diff.md"
BEGIN, END = "<!-- diff_cases: begin (scripts/diff_cases.py writes this block) -->", \
    "<!-- diff_cases: end -->"  # fmt: skip
NUMBERS = re.compile(r"<!-- numbers: (.*?) -->", re.S)
QUANT_TYPES = ("Q8_0", "Q4_0")


# -- the cases -------------------------------------------------------------------------------


def write_minilm_gguf(path: Path, kind: str) -> None:
    """MiniLM (sample:minilm) as a llama.cpp GGUF file of type `kind`: matrices quantized,
    vectors float32, names as llama.cpp's converter names them."""
    import gguf

    import striate

    qtype = getattr(gguf.GGMLQuantizationType, kind)
    writer = gguf.GGUFWriter(path, "bert")
    with striate.open("sample:minilm") as ckpt:
        config = ckpt.config or {}
        names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, int(config["num_hidden_layers"]))
        writer.add_block_count(int(config["num_hidden_layers"]))
        writer.add_uint32("bert.embedding_length", int(config["hidden_size"]))
        writer.add_uint32("bert.attention.head_count", int(config["num_attention_heads"]))
        for name in ckpt.names():
            w = ckpt.read(name)
            gname = names.get_name(name, try_suffixes=(".weight", ".bias")) or name
            if w.ndim == 2 and w.shape[1] % 32 == 0:
                writer.add_tensor(gname, gguf.quants.quantize(w, qtype), raw_dtype=qtype)
            else:
                writer.add_tensor(gname, w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _plain(value: Any) -> Any:
    """A JSON-ready value: numpy scalars to Python, floats to 4 significant digits, NaN to
    None, index lists to text."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(":" if v is None or pd.isna(v) else str(int(v)) for v in value) + "]"
    if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(f"{float(value):.4g}")
    return str(value)


def _rows(frame: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    return [{c: _plain(r.get(c)) for c in columns} for r in frame.to_dict("records")]


def summarize(run: Any) -> dict[str, Any]:
    """The numbers docs/diff.md quotes of one diff (`striate.DiffRun`)."""
    t, f, blocks, residual = run.tensors, run.findings, run.blocks, run.residual
    changed = t[t["rel_change"] > 0]
    matrices = changed[changed["update_effective_rank"].notna()]
    full = [min(s[0], int(np.prod(s[1:]))) for s in matrices["shape"]]
    counts = f["status"].value_counts()
    hot = blocks[blocks["kind"].isin(["hotspot", "norm_outlier"])]
    return {
        "a": run.manifest["a"]["source"], "b": Path(run.manifest["b"]["source"]).name,
        "name_mapping": run.manifest["name_mapping"],
        "n_compared": len(t), "n_changed": len(changed), "n_unmatched": len(run.unmatched),
        "rel_change_median": _plain(changed["rel_change"].median()),
        "rel_change_max": _plain(changed["rel_change"].max()),
        "cosine_min": _plain(t["cosine"].min()),
        "update_rank_share_median": _plain(
            float(np.median(matrices["update_effective_rank"].to_numpy() / np.array(full)))
            if len(matrices) else None),
        "status": {s: int(counts.get(s, 0)) for s in ("lost", "weakened", "new", "kept")},
        "largest": _rows(t.sort_values("rel_change", ascending=False).head(5),
                         ["name", "role", "layer", "dtype_b", "rel_change", "cosine",
                          "update_effective_rank", "update_stable_rank", "top_k_overlap"]),
        "not_kept": _rows(f[f["status"] != "kept"].head(6),
                          ["status", "kind", "tensor", "index", "value_a", "value_b",
                           "retention"]),
        "blocks": _rows(hot.head(3), ["tensor", "index", "kind", "block_format", "value_a",
                                      "value_b", "n_others", "others_zeroed",
                                      "others_rel_error", "error_ratio"]),
        "residual": _rows(residual.head(3), ["residual_dim", "rel_change", "pooled_z_update",
                                             "significance_update"]),
    }  # fmt: skip


def lottery_checkpoints(folder: Path | None, scratch: Path) -> tuple[Path, Path]:
    """The dense network's first and last checkpoints of a lottery run (run here when `folder`
    is None)."""
    if folder is None:
        from striate.experiments import run_experiment

        folder = scratch / "lottery"
        run_experiment("lottery", folder, preset="quick", progress=True)
    steps = sorted((folder / "checkpoints" / "dense").glob("step_*.safetensors"),
                   key=lambda p: int(p.stem.removeprefix("step_")))  # fmt: skip
    if len(steps) < 2:
        sys.exit(f"{folder}: no checkpoints/dense/step_*.safetensors")
    return steps[0], steps[-1]


def run(lottery: Path | None, keep: Path | None) -> dict[str, Any]:
    """Every case, each diff written to a run directory (under `keep`, else a temp folder)."""
    import striate

    numbers: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        for kind in QUANT_TYPES:
            gguf_file = root / f"minilm-{kind}.gguf"
            write_minilm_gguf(gguf_file, kind)
            result = striate.diff("sample:minilm", gguf_file, root / f"minilm-{kind}",
                                  progress=True)  # fmt: skip
            numbers[kind] = summarize(result)
            print(result)
        first, last = lottery_checkpoints(lottery, root)
        result = striate.diff(first, last, root / "lottery-dense", progress=True)
        numbers["lottery"] = summarize(result) | {
            "first": first.stem,
            "last": last.stem,
            "b": f"{last.parent.name}/{last.name}",
            "a": f"{first.parent.name}/{first.name}",
        }
        print(result)
    return numbers


# -- the page --------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    return "" if value is None else f"`{value}`" if isinstance(value, str) and "." in value \
        and " " not in value else str(value)  # fmt: skip


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "(none)\n"
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_cell(r[c]) for c in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _status(s: dict[str, int]) -> str:
    return ", ".join(f"{s[k]} {k}" for k in ("lost", "weakened", "new", "kept"))


def _quant(kind: str, n: dict[str, Any]) -> str:
    block = n["blocks"][0] if n["blocks"] else None
    worst = (
        f"The worst block: `{block['tensor']}` {block['kind']} w{block['index']} = "
        f"{block['value_a']} (B: {block['value_b']}); {block['others_zeroed']} of its "
        f"{block['n_others']} block-mates are exactly 0 in B, their error is "
        f"{block['others_rel_error']} of their RMS and {block['error_ratio']}x the tensor's "
        "median block error.\n"
        if block
        else "No hotspot or norm outlier in A.\n"
    )
    return (
        f"### MiniLM against its {kind} GGUF file\n\n"
        f"`striate diff sample:minilm minilm-{kind}.gguf`: {n['n_compared']} tensors matched "
        f"(names: {n['name_mapping']}), {n['n_unmatched']} unmatched, {n['n_changed']} changed "
        f"(the matrices; vectors stay float32). rel_change: median {n['rel_change_median']}, "
        f"largest {n['rel_change_max']}; smallest cosine {n['cosine_min']}; the update's "
        f"effective rank is {n['update_rank_share_median']} of the full rank (median over the "
        f"changed matrices). Findings: {_status(n['status'])}.\n\n"
        + worst
        + "\nThe largest changes:\n\n"
        + _table(n["largest"])
        + "\nFindings not kept:\n\n"
        + _table(n["not_kept"])
        + "\nThe blocks of the outliers:\n\n"
        + _table(n["blocks"])
        + "\nThe residual dims that changed most:\n\n"
        + _table(n["residual"])
    )


def _lottery(n: dict[str, Any], others: dict[str, Any]) -> str:
    quantized = " and ".join(
        f"{others[k]['update_rank_share_median']} for {k}" for k in QUANT_TYPES if k in others
    )
    return (
        "### A network against its trained self: the lottery experiment's dense MLP\n\n"
        f"`striate diff {n['a']} {n['b']}` (its first checkpoint against its last): "
        f"{n['n_compared']} tensors, {n['n_changed']} changed; rel_change median "
        f"{n['rel_change_median']}, largest {n['rel_change_max']}; the update's effective rank "
        f"is {n['update_rank_share_median']} of the full rank (median; "
        f"{quantized or 'no quantization measured'} above). Findings: "
        f"{_status(n['status'])}.\n\n"
        + _table(n["largest"])
        + "\nFindings not kept:\n\n"
        + _table(n["not_kept"])
    )


def render(numbers: dict[str, Any]) -> str:
    """The generated block of docs/diff.md, from `numbers` (what `run` measured)."""
    parts = [_quant(k, numbers[k]) for k in QUANT_TYPES if k in numbers]
    if "lottery" in numbers:
        parts.append(_lottery(numbers["lottery"], numbers))
    text = json.dumps(numbers, separators=(",", ":")).replace("--", "\\u002d-")  # row order kept
    return f"{BEGIN}\n<!-- numbers: {text} -->\n\n" + "\n".join(parts) + f"\n{END}"


def block(page: str) -> tuple[int, int]:
    """Where the generated block is in `page` (start, end offsets)."""
    start, end = page.find(BEGIN), page.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{PAGE}: no generated block ({BEGIN} ... {END})")
    return start, end + len(END)


def stale(page: str) -> bool:
    """Whether the generated block of `page` is not what the JSON it holds renders to."""
    start, end = block(page)
    found = NUMBERS.search(page[start:end])
    if found is None:
        return True
    return page[start:end] != render(json.loads(found.group(1)))


def write(numbers: dict[str, Any] | None = None) -> None:
    page = PAGE.read_text(encoding="utf-8")
    start, end = block(page)
    if numbers is None:
        found = NUMBERS.search(page[start:end])
        numbers = json.loads(found.group(1)) if found else {}
    PAGE.write_text(page[:start] + render(numbers) + page[end:], encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "write", "check"])
    parser.add_argument("--lottery", type=Path, help="a lottery run (default: run it here)")
    parser.add_argument("--keep", type=Path, help="write the files and runs here, kept")
    args = parser.parse_args()
    if args.command == "run":
        numbers = run(args.lottery, args.keep)
        print(json.dumps(numbers, indent=1))
        write(numbers)
    elif args.command == "write":
        write()
    elif stale(PAGE.read_text(encoding="utf-8")):
        sys.exit(f"{PAGE} is stale: run python scripts/diff_cases.py write")


if __name__ == "__main__":
    main()

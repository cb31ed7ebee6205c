"""Architecture rules that import-linter cannot state (its contracts are in .importlinter)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "striate"


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_uses(source: str, here: str) -> list[str]:
    """`from striate.x import _name` and `module._name` for a striate module bound by an
    import, in the source of module `here`: private names used across modules."""
    tree = ast.parse(source)
    modules: dict[str, str] = {}  # local name -> striate module it is bound to
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("striate"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{here}: from {node.module} import {alias.name}")
                modules[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("striate") and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{here}: {node.value.id}.{node.attr}")
    return found


def test_no_module_uses_another_modules_private_names() -> None:
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 100
    offences = [
        use
        for path in files
        for use in _private_uses(path.read_text(encoding="utf-8"), _module_name(path))
    ]
    assert offences == []


def test_the_private_name_rule_sees_both_forms() -> None:
    text = "from striate.render.png import _encode\nimport striate.store as s\ns._TEMP\n"
    assert _private_uses(text, "probe") == [
        "probe: from striate.render.png import _encode",
        "probe: s._TEMP",
    ]
    assert _private_uses("from striate.render import png\npng.draw_png\n", "probe") == []


def test_no_scan_module_is_left_at_the_package_root() -> None:
    root = {p.stem for p in SRC.glob("*.py")}
    assert not root & {
        "scan",
        "scan_cache",
        "scan_workers",
        "scan_many",
        "spectrum_scan",
        "ffn_scan",
        "banding_scan",
        "residual",
        "norm_links",
        "finding_groups",
    }
    assert {
        "pipeline",
        "tensor",
        "cache",
        "workers",
        "many",
        "images",
        "spectra",
        "ffn",
        "banding",
        "config",
    } <= {p.stem for p in (SRC / "scan").glob("*.py")}


def test_import_contracts_hold() -> None:
    """`lint-imports` with the repository's contracts (layers, base modules, no cycles)."""
    exe = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run(
        [str(exe), "--no-cache", "--no-logo", "--config", str(SRC.parents[1] / ".importlinter")],
        capture_output=True, text=True, cwd=SRC.parents[1], check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 kept, 0 broken" in done.stdout


def _fresh(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_import_striate_loads_no_heavy_package_and_every_export_resolves() -> None:
    """`import striate` is cheap (every export is imported on first use), and every name of
    `__all__` of the lazy packages resolves to what it names."""
    loaded = _fresh(
        "import sys, striate, striate.scan, striate.diff, striate.report, striate.render\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'pandas', 'matplotlib', 'scipy'}))"
    )
    assert loaded == "[]"
    for package in ("striate", "striate.scan", "striate.diff", "striate.report", "striate.render"):
        names = _fresh(
            f"import importlib; p = importlib.import_module({package!r})\n"
            "print(sum(getattr(p, n) is not None for n in p.__all__), len(p.__all__))"
        ).split()
        assert names[0] == names[1], package


def test_striate_scan_and_diff_are_callable_whatever_was_imported_first() -> None:
    """`striate.scan(model)` and `striate.diff(a, b)` call the functions, both when the user's
    first import is `striate` and when a submodule was imported before."""
    for first in ("striate", "striate.scan.config", "striate.diff.run"):
        out = _fresh(
            f"import {first}\nimport striate\n"
            "from striate.scan.pipeline import scan\nfrom striate.diff.pipeline import diff\n"
            "print(callable(striate.scan), striate.scan.scan is scan, callable(striate.diff),"
            " striate.diff.diff is diff, striate.scan.config.ScanConfig is striate.ScanConfig)"
        )
        assert out == "True True True True True", first

"""Measure the README's first-screen figures and check them, or write them (`--update`).

    .venv/bin/python scripts/readme_figures.py           # measure, print, exit 1 if they drifted
    .venv/bin/python scripts/readme_figures.py --update  # measure and write them into README.md

Measured: the wall time of the README's first command's scan (`striate scan sample:minilm`,
whole process, default settings, into a fresh directory) and the size of the cache it leaves. A
time has drifted when it is 25% off (it varies by ~10% between runs on idle cores), a size when it
differs. Run it on idle cores: the time is what a user waits, not a benchmark (benchmarks/ has
those). The cache size is also checked by tests/test_scan_samples.py; the time only here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: (pattern of the phrase in README.md, how to write it from the measured value)
PHRASES = {
    "seconds": (r"scans every tensor \(about (\d+) s on 2 cores\)",
                "scans every tensor (about {} s on 2 cores)"),
    "cache_mb": (r"\((\d+) MB for `sample:minilm`\)", "({} MB for `sample:minilm`)"),
}  # fmt: skip


def measure() -> dict[str, int]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "minilm"
        start = time.perf_counter()
        subprocess.run([str(ROOT / ".venv/bin/striate"), "scan", "sample:minilm", "--out",
                        str(out), "--quiet"], check=True)  # fmt: skip
        seconds = time.perf_counter() - start
        cache = sum(p.stat().st_size for p in (out / ".striate-cache").iterdir())
    return {"seconds": round(seconds / 5) * 5, "cache_mb": round(cache / 1e6)}


def main() -> int:
    measured = measure()
    text = README.read_text(encoding="utf-8")
    drifted = False
    for key, (pattern, phrase) in PHRASES.items():
        found = re.search(pattern, text)
        stated = int(found.group(1)) if found else None
        print(f"{key}: README {stated}, measured {measured[key]}")
        # a wall time varies by ~10% from run to run on idle cores; a size does not
        slack = 0.25 * measured[key] if key == "seconds" else 0
        drifted |= stated is None or abs(stated - measured[key]) > slack
        if "--update" in sys.argv and found:
            text = text.replace(found.group(0), phrase.format(measured[key]))
    if "--update" in sys.argv:
        README.write_text(text, encoding="utf-8")
        return 0
    return 1 if drifted else 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Screenshots of the report and viewer for the README: `.venv/bin/python scripts/screenshots.py`.

Scans `sample:minilm` into runs/minilm (unless it is there already), then drives Debian's
headless chromium (`bash scripts/browser.sh` installs it) over the report opened from disk and
over `striate view` jumped to the strongest finding, and writes docs/images/report.png,
docs/images/report_curves.png and docs/images/viewer.png.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

import striate
from striate.viewer import ViewerServer, open_viewer

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip


def main(run_dir: Path = ROOT / "runs" / "minilm", out: Path = ROOT / "docs" / "images") -> None:
    if not (run_dir / "manifest.json").is_file():
        striate.scan("sample:minilm", out=run_dir, progress=True)
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p, tempfile.TemporaryDirectory() as profile:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=ARGS, headless=True,
            viewport={"width": 1400, "height": 900},
        )  # fmt: skip
        page = context.new_page()
        report(page, run_dir, out)
        viewer(page, run_dir, out)
        context.close()
    print(f"screenshots in {out}")


def report(page: Page, run_dir: Path, out: Path) -> None:
    page.goto((run_dir / "index.html").as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(out / "report.png"))
    page.evaluate("() => document.querySelector('#curves').scrollIntoView()")
    page.wait_for_timeout(500)  # lazy images start loading once in view
    page.wait_for_function(
        "() => [...document.images].filter((i) => { const r = i.getBoundingClientRect();"
        " return r.bottom > 0 && r.top < innerHeight; }).every((i) => i.complete)"
    )
    page.screenshot(path=str(out / "report_curves.png"))


def viewer(page: Page, run_dir: Path, out: Path) -> None:
    with ViewerServer(open_viewer(run_dir)) as url:
        page.goto(url)
        page.wait_for_selector("#tensors li")
        page.click(".tabs button[data-tab=findings]")
        page.select_option("#kind", "hotspot")
        page.locator("#findings tbody tr").first.click()
        page.wait_for_function("() => striate.state.mark && !striate.state.pending.size")
        f = page.evaluate("() => striate.state.mark")
        row, col = f["rows"][0], f["cols"][0]
        page.evaluate(f"() => striate.jump({{tensor: striate.state.name, row: {row}, col: {col}}})")
        page.wait_for_timeout(300)
        page.wait_for_function("() => !striate.state.pending.size")
        at = page.evaluate(f"() => striate.toPage({row}, {col})")
        page.mouse.move(at["x"], at["y"])
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "viewer.png"))


if __name__ == "__main__":
    main(*(Path(a) for a in sys.argv[1:3]))

"""Every committed reproduction page is what its JSON files produce (shared/DESIGN.md, "Claims
of a reproduction"): regenerate them all and compare."""

from __future__ import annotations

from pathlib import Path

from striate.experiments import pages

ROOT = Path(__file__).resolve().parent.parent / "docs" / "reproductions"


def test_committed_pages_are_generated_from_their_json() -> None:
    assert pages.stale(ROOT) == [], "run: python scripts/reproductions.py write"


def test_every_reproduction_has_several_seeds_and_no_typed_number() -> None:
    for folder in pages.reproductions(ROOT):
        rows = pages.read_claims(folder)
        assert rows, f"{folder}: claims.json lists no claim"
        assert all(r["n_seeds"] >= 3 for r in rows), f"{folder}: fewer than 3 seeds"
        discussion = folder / "discussion.md"
        if discussion.is_file():
            pages.check_discussion(discussion.read_text(encoding="utf-8"), str(discussion))

"""The public API is small and pinned: changing it is a decision, not an accident."""

import striate


def test_public_api_is_pinned() -> None:
    assert sorted(striate.__all__) == [
        "Anatomy", "Checkpoint", "DiffRun", "FFNTriple", "Run", "ScanConfig", "StriateError",
        "TensorAnatomy", "TensorInfo", "__version__", "anatomy_of", "diff", "open", "scan",
        "show",
    ]  # fmt: skip
    for name in striate.__all__:
        assert hasattr(striate, name)

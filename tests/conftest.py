"""Shared test fixtures: where the real data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """Real datasets: $VPR_DATA_DIR, else ../shared/data beside the repository."""
    return Path(os.environ.get("VPR_DATA_DIR", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = data_dir()
    if not path.is_dir():
        pytest.fail(f"real data not found at {path}; set VPR_DATA_DIR to ../shared/data")
    return path

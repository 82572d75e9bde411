"""Shared fixtures: tiny random models (built once per session) and the real GLUE directory."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny import make_tiny_model  # noqa: E402

GLUE = Path(__file__).resolve().parents[2] / "shared" / "data" / "glue"
needs_glue = pytest.mark.skipif(not GLUE.is_dir(), reason=f"real GLUE data not found at {GLUE}")


def pytest_configure(config):
    config.addinivalue_line("markers", "distributed: starts 2 CPU processes with `accelerate launch` (deselect: -m 'not distributed')")


@pytest.fixture(autouse=True)
def _keep_threads():
    """A stage run with ``threads`` sets torch's global thread count; restore it after every test."""
    import torch

    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 32, 4 heads) with a small WordPiece tokenizer."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not GLUE.is_dir():
        pytest.skip(f"real GLUE data not found at {GLUE}")
    return GLUE

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


@pytest.fixture(autouse=True, scope="session")
def _teacher_logit_cache(tmp_path_factory):
    """Teacher logits cached by prune go to this session's temporary directory, not the user's cache
    (session scope: set before the session- and module-scoped fixtures that run prune)."""
    import os

    old = os.environ.get("SPARSEBERT_TEACHER_LOGIT_CACHE")
    os.environ["SPARSEBERT_TEACHER_LOGIT_CACHE"] = str(tmp_path_factory.mktemp("teacher_logits"))
    yield
    if old is None:
        os.environ.pop("SPARSEBERT_TEACHER_LOGIT_CACHE", None)
    else:
        os.environ["SPARSEBERT_TEACHER_LOGIT_CACHE"] = old


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A random 2-layer BERT (hidden 32, 4 heads) with a small WordPiece tokenizer."""
    return make_tiny_model(tmp_path_factory.mktemp("tiny") / "bert")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    if not GLUE.is_dir():
        pytest.skip(f"real GLUE data not found at {GLUE}")
    return GLUE

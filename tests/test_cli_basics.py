"""CLI basics of issue 33: --version, shell completion, prune --dry-run, did-you-mean for recipe keys,
flags named in validation errors and one-line errors for models that cannot be loaded."""

from __future__ import annotations

from typer.testing import CliRunner

import sparsebert
from sparsebert.cli import app

runner = CliRunner()


def invoke(*args, **kwargs):
    return runner.invoke(app, [str(a) for a in args], **kwargs)


def test_version():
    r = invoke("--version")
    assert r.exit_code == 0 and r.output == f"sparsebert {sparsebert.__version__}\n", r.output


def test_shell_completion_is_on():
    assert "--install-completion" in invoke("--help").output
    r = invoke("--show-completion", "bash", prog_name="sparsebert", env={"SHELL": "/bin/bash"})
    assert r.exit_code == 0, r.output
    assert "complete" in r.output and "_SPARSEBERT_COMPLETE=complete_bash" in r.output, r.output

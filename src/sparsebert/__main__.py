"""``python -m sparsebert ...``: the ``sparsebert`` command line (:mod:`sparsebert.cli`)."""

from sparsebert.cli import app

if __name__ == "__main__":  # pragma: no cover
    app(prog_name="sparsebert")

"""``help(sparsebert)`` is one screen: the package docstring lists the public API, and pydoc does not
document every class and function in full; each public function documents its arguments, its return
value, its errors and where it comes from (issue 33)."""

from __future__ import annotations

import inspect
import pydoc

import sparsebert


def test_help_is_the_package_summary():
    text = pydoc.render_doc(sparsebert, renderer=pydoc.plaintext)
    lines = text.splitlines()
    # NAME, the docstring, pydoc's module list (PACKAGE CONTENTS, about half), DATA, VERSION, FILE
    assert len(lines) <= 60 + len(list(__import__("pkgutil").iter_modules(sparsebert.__path__))), len(lines)
    assert "CLASSES" not in lines and "FUNCTIONS" not in lines
    assert lines[3].strip() == "sparsebert - sparsebert — knowledge-aware sparse pruning of BERT-family encoders."
    for name in sparsebert.__all__:
        if name != "__version__":
            assert f"    {name}" in sparsebert.__doc__ or f", {name}" in sparsebert.__doc__, name


def test_public_names_still_import():
    namespace: dict = {}
    exec("from sparsebert import *", namespace)
    assert set(sparsebert.__all__) <= set(namespace)
    assert sparsebert.prune is namespace["prune"] and "prune" not in dir(sparsebert)


def test_public_functions_document_args_return_errors_and_source():
    for name in sparsebert.__all__:
        obj = getattr(sparsebert, name, None)
        if not inspect.isfunction(obj):
            continue
        doc = inspect.getdoc(obj) or ""
        for section in ("Args:", "Returns:", "Raises:"):
            assert section in doc, (name, section)
        # the source: a paper or the command / module it backs
        assert any(k in doc for k in ("et al.", "sparsebert ", ":mod:", ":func:")), name

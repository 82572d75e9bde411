"""The script tests/test_distributed.py starts with ``accelerate launch``: ``sparsebert <args>`` plus two hooks.

* ``SPARSEBERT_TEST_DIE_AT=k``: rank 1 dies (``os._exit``, no clean-up) right after optimizer step k;
  the launcher then stops rank 0 as well.
* ``SPARSEBERT_TEST_DUMP=dir``: after training, every rank saves its student's weights (``model.*``) and
  its pruning masks (``mask.<weight name>``, uint8) to ``dir/rank<r>.safetensors`` (only rank 0 writes the output).
"""

from __future__ import annotations

import importlib
import os
import sys

import torch
from safetensors.torch import save_file

from sparsebert.distributed import context

prune_module = importlib.import_module("sparsebert.stages.prune")  # the module; `sparsebert.prune` is the function
real_fit = prune_module.fit


def fit(**kw):
    die_at = int(os.environ.get("SPARSEBERT_TEST_DIE_AT", "0"))
    after = kw["after_step"]

    def after_step(step: int):
        if step == die_at and context().rank == 1:
            os._exit(3)
        return after(step)

    result = real_fit(**{**kw, "after_step": after_step})
    dump = os.environ.get("SPARSEBERT_TEST_DUMP")
    if dump:
        tensors = {f"model.{k}": v.detach().clone().contiguous() for k, v in kw["model"].state_dict().items()}
        names = {id(p): n for n, p in kw["model"].named_parameters()}
        sp = kw["sparsifier"]
        tensors.update({f"mask.{names[id(sp.targets[k].weight)]}": m.to(torch.uint8) for k, m in sp.masks.items()})
        save_file(tensors, os.path.join(dump, f"rank{context().rank}.safetensors"))
    return result


prune_module.fit = fit

if __name__ == "__main__":
    from sparsebert.cli import app

    app(args=sys.argv[1:], prog_name="sparsebert")

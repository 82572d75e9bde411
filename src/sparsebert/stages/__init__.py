"""The training and evaluation stages, one module each, in pipeline order:

* :mod:`sparsebert.stages.finetune` — stage 1, fine-tune the teacher (:func:`sparsebert.finetune`);
* :mod:`sparsebert.stages.prune` — stage 2, prune the student while distilling (:func:`sparsebert.prune`;
  also its schedules, :func:`~sparsebert.stages.prune.build_schedules`, and the dry-run plan);
* :mod:`sparsebert.stages.evaluate` — dev metrics of a saved model (:func:`sparsebert.evaluate`).

The stage functions are exported by the top-level package (``from sparsebert import prune``). This
package exports nothing itself, so that ``sparsebert.stages.prune`` is always the module
(``import sparsebert.stages.prune as p; p.build_schedules``): no attribute shadows a module.
"""

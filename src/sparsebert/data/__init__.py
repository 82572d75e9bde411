"""Task data: GLUE task registry, ``glue_data`` TSV readers, optional hub loading, your own
CSV / TSV / JSON-lines files, and the demo set.

See :mod:`sparsebert.data.tasks`, :mod:`sparsebert.data.glue`, :mod:`sparsebert.data.files` (own data),
:mod:`sparsebert.data.encode`
(tokenising, batches), :mod:`sparsebert.data.taskdata` (the encoded splits of a training stage),
:mod:`sparsebert.data.text` (unlabelled text for task-agnostic distillation: ``load_text``; imported on
first use), :mod:`sparsebert.data.corpus` (``make corpus``: the general English corpus, with provenance),
:mod:`sparsebert.data.augment` (TinyBERT data augmentation; imported on first use of its names
here) and :mod:`sparsebert.data.demo`.
GLUE: Wang et al., *GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language
Understanding*, ICLR 2019.
"""

from sparsebert._lazy import lazy_exports

from .demo import DEMO_SDIST_SHA256, read_movie_snippets, write_demo_glue
from .files import FileTaskSpec, files_task, read_data_file
from .glue import DataError, Example, load_split, read_glue_split, resolve_task_dir
from .tasks import TASKS, TaskSpec, get_task

#: names of :mod:`sparsebert.data.augment`, imported on first use (reading data does not need it)
_AUGMENT = ("AugmentSettings", "augment_task", "load_augmented", "read_word_vectors")
#: names of :mod:`sparsebert.data.text`, imported on first use
_TEXT = ("load_text",)

__all__ = [
    *_AUGMENT,
    *_TEXT,
    "TASKS",
    "TaskSpec",
    "get_task",
    "Example",
    "DataError",
    "read_glue_split",
    "load_split",
    "resolve_task_dir",
    "FileTaskSpec",
    "files_task",
    "read_data_file",
    "DEMO_SDIST_SHA256",
    "read_movie_snippets",
    "write_demo_glue",
]


__getattr__, __dir__ = lazy_exports(__name__, globals(), {**{n: f"{__name__}.augment" for n in _AUGMENT},
                                                          **{n: f"{__name__}.text" for n in _TEXT}})

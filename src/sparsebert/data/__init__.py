"""GLUE data: task registry, ``glue_data`` TSV readers, optional hub loading, and the demo set.

See :mod:`sparsebert.data.tasks`, :mod:`sparsebert.data.glue`, :mod:`sparsebert.data.augment`
(TinyBERT data augmentation) and :mod:`sparsebert.data.demo`.
GLUE: Wang et al., *GLUE: A Multi-Task Benchmark and Analysis Platform for Natural Language
Understanding*, ICLR 2019.
"""

from .augment import AugmentSettings, augment_task, load_augmented, read_word_vectors
from .demo import DEMO_SDIST_SHA256, read_movie_snippets, write_demo_glue
from .glue import DataError, Example, load_split, read_glue_split, resolve_task_dir
from .tasks import TASKS, TaskSpec, get_task

__all__ = [
    "AugmentSettings",
    "augment_task",
    "load_augmented",
    "read_word_vectors",
    "TASKS",
    "TaskSpec",
    "get_task",
    "Example",
    "DataError",
    "read_glue_split",
    "load_split",
    "resolve_task_dir",
    "DEMO_SDIST_SHA256",
    "read_movie_snippets",
    "write_demo_glue",
]

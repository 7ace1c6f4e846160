"""Fine-tuning tasks (GROVER's Prom300, PromScan, CTCF, and user data) as TFDS array_record datasets.

The builders (`grover_jax.data.tasks.builders`: `prepare_task`, `TaskSpec`) import
tensorflow_datasets; this package itself stays light so the CLI can import its errors.
"""

from grover_jax.data.tasks.errors import FinetuneError, TaskDataError

__all__ = ["FinetuneError", "TaskDataError"]

"""Training: typed configs, the generic Optax loop with Orbax checkpoints, and plots.

:func:`train_and_evaluate` trains any task of :mod:`gru_jax.tasks` (built in, or added with
:func:`gru_jax.tasks.register_task`) from a :class:`Config`; the ``gru-jax`` command
(:mod:`gru_jax.cli`) is a thin layer over it.
"""

import gru_jax._base.train_extra  # noqa: F401  (one ImportError naming the extra if it is missing)
from gru_jax.tasks._plots import loss_plot, scatter_plot, series_plot
from gru_jax.tasks._schema import ConfigError, Setting, setting
from gru_jax.train._checkpoint import CheckpointError
from gru_jax.train._config import (
    Config,
    ModelConfig,
    TrainConfig,
    config_differences,
    config_to_dict,
    load_config,
    load_settings,
    parse_config,
)
from gru_jax.train._distributed import (
    Cluster,
    find_cluster,
    make_mesh,
    maybe_initialize_distributed,
    supervise,
)
from gru_jax.train._export import export_run
from gru_jax.train._run import (
    evaluate_checkpoint,
    load_checkpoint,
    make_optimizer,
    train_and_evaluate,
)
from gru_jax.train._signals import Preempted

__all__ = [
    "CheckpointError",
    "Cluster",
    "Config",
    "ConfigError",
    "ModelConfig",
    "Preempted",
    "Setting",
    "TrainConfig",
    "config_differences",
    "config_to_dict",
    "evaluate_checkpoint",
    "export_run",
    "find_cluster",
    "load_checkpoint",
    "load_config",
    "load_settings",
    "loss_plot",
    "make_mesh",
    "make_optimizer",
    "maybe_initialize_distributed",
    "parse_config",
    "scatter_plot",
    "series_plot",
    "setting",
    "supervise",
    "train_and_evaluate",
]

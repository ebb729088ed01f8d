"""Training: configs, the generic Optax loop with Orbax checkpoints, plots and the CLI."""

from gru_jax.train.config import (
    Config,
    ConfigError,
    ModelConfig,
    TrainConfig,
    config_to_dict,
    load_config,
)
from gru_jax.train.loop import (
    CheckpointError,
    evaluate_checkpoint,
    make_mesh,
    make_optimizer,
    maybe_initialize_distributed,
    train_and_evaluate,
)

__all__ = [
    "CheckpointError",
    "Config",
    "ConfigError",
    "ModelConfig",
    "TrainConfig",
    "config_to_dict",
    "evaluate_checkpoint",
    "load_config",
    "make_mesh",
    "make_optimizer",
    "maybe_initialize_distributed",
    "train_and_evaluate",
]

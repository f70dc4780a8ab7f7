"""The training engine: recipe config, named methods, the train loop with resume and DDP."""

from longtail.engine.config import (
    METHODS,
    PRESETS,
    MethodSpec,
    TrainConfig,
    get_method,
    make_config,
)
from longtail.engine.train import RunInterrupted, evaluate, prepare_data, train

__all__ = [
    "METHODS",
    "PRESETS",
    "MethodSpec",
    "RunInterrupted",
    "TrainConfig",
    "evaluate",
    "get_method",
    "make_config",
    "prepare_data",
    "train",
]

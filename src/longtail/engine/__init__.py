"""The training engine: recipe config, named methods, the train loop with resume and DDP; the
deep imbalanced regression runs (:mod:`longtail.engine.regression`)."""

from longtail.engine.config import (
    METHODS,
    PRESETS,
    MethodSpec,
    TrainConfig,
    get_method,
    make_config,
)
from longtail.engine.regression import (
    REGRESSION_METHODS,
    RegressionConfig,
    make_regression_config,
    train_regression,
)
from longtail.engine.run import RunInterrupted, TrainingDiverged, fingerprint
from longtail.engine.train import evaluate, prepare_data, run_identity, train

__all__ = [
    "METHODS",
    "PRESETS",
    "REGRESSION_METHODS",
    "MethodSpec",
    "RegressionConfig",
    "RunInterrupted",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "fingerprint",
    "get_method",
    "make_config",
    "make_regression_config",
    "prepare_data",
    "run_identity",
    "train",
    "train_regression",
]

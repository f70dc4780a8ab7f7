"""The training engine: recipe config, named methods, the train loop with resume and DDP; the
deep imbalanced regression runs (:mod:`longtail.engine.regression`) and the long-tailed
multi-label runs (:mod:`longtail.engine.multilabel`)."""

from longtail.engine.config import (
    METHODS,
    PRESETS,
    MethodSpec,
    TrainConfig,
    get_method,
    make_config,
)
from longtail.engine.multilabel import (
    MULTILABEL_METHODS,
    MultiLabelConfig,
    make_multilabel_config,
    train_multilabel,
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
    "MULTILABEL_METHODS",
    "PRESETS",
    "REGRESSION_METHODS",
    "MethodSpec",
    "MultiLabelConfig",
    "RegressionConfig",
    "RunInterrupted",
    "TrainConfig",
    "TrainingDiverged",
    "evaluate",
    "fingerprint",
    "get_method",
    "make_config",
    "make_multilabel_config",
    "make_regression_config",
    "prepare_data",
    "run_identity",
    "train",
    "train_multilabel",
    "train_regression",
]

"""Deep imbalanced regression (DIR) runs: data → backbone → DIR method → Adam → metrics.

The DIR counterpart of :mod:`longtail.engine.train`, on the same run harness
(:mod:`longtail.engine.run`): the same output folder (config, checkpoint, log, result), the
same identity (config + a fingerprint of the data loaded), resume and refusal rules. Its parts:

* :mod:`~longtail.engine.regression.config`: the method table :data:`REGRESSION_METHODS` (the
  one list of DIR methods, in benchmark order, with display labels), :class:`RegressionConfig`
  and its presets;
* :mod:`~longtail.engine.regression.data`: loading, the DIR split, label bins and shot
  regions, the target transform, :func:`run_identity`;
* :mod:`~longtail.engine.regression.model`: :class:`DIRNet` (backbone, optional FDS, head);
* :mod:`~longtail.engine.regression.loop`: :func:`train_step` and :func:`train_regression`.

Model selection, as in the DIR repositories (``YyzHarry/imbalanced-regression`` keeps the
checkpoint of the best validation MAE and tests it): the validation split is evaluated after
every epoch, the weights of the epoch with the lowest validation MAE are kept, and the record's
test metrics are those of these weights. The test MAE of the last epoch's weights is reported
beside them (``metrics["last_mae"]``, ``last_mae_many``, ...).

Targets: all binning (shot regions, LDS/FDS bins, Group-DIR groups, per-bin errors) and every
reported metric use the target in its original units (US$ for diamonds' price, years for ages),
in float64. The network is trained on a transformed target (``target_transform``: standardised
with the training mean and standard deviation by default, or ``log`` then standardised, or
``none``); predictions are mapped back before any metric. BMC's σ lives in the transformed
units.

Device: the first CUDA device when there is one, else the CPU; the data stay on the CPU and
each batch is moved. One process (no DDP: DIR runs are small).
"""

from longtail.engine.regression.config import (
    REGRESSION_METHODS,
    REGRESSION_PRESETS,
    RegressionConfig,
    RegressionMethod,
    get_regression_method,
    make_regression_config,
)
from longtail.engine.regression.data import (
    RegressionData,
    TargetTransform,
    check_regression_data,
    prepare_regression_data,
    run_identity,
)
from longtail.engine.regression.loop import better, train_regression, train_step
from longtail.engine.regression.model import DIRNet, build_model, mlp

__all__ = [
    "REGRESSION_METHODS",
    "REGRESSION_PRESETS",
    "DIRNet",
    "RegressionConfig",
    "RegressionData",
    "RegressionMethod",
    "TargetTransform",
    "better",
    "build_model",
    "check_regression_data",
    "get_regression_method",
    "make_regression_config",
    "mlp",
    "prepare_regression_data",
    "run_identity",
    "train_regression",
    "train_step",
]

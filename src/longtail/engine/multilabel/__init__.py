"""Long-tailed multi-label classification runs: data → model → multi-label loss → Adam → metrics.

The multi-label counterpart of :mod:`longtail.engine.train`, on the same run harness
(:mod:`longtail.engine.run`): the same output folder (config, checkpoint, log, result), the
same identity (config + a fingerprint of the data loaded), resume and refusal rules, and the
same data-parallel training under ``torchrun``. Its parts:

* :mod:`~longtail.engine.multilabel.config`: the method table :data:`MULTILABEL_METHODS` (the
  one list of multi-label methods, in benchmark order, with display labels),
  :class:`MultiLabelConfig` and its presets;
* :mod:`~longtail.engine.multilabel.data`: loading (a registered set such as
  ``"fashion-mnist-mosaic-lt"`` or an ``.npz`` file), the validation split, label counts,
  :func:`run_identity`;
* :mod:`~longtail.engine.multilabel.loop`: :func:`train_multilabel`.

Evaluation: after the last epoch the model scores the validation and test splits (sigmoid of
the logits); the record's metrics are :func:`~longtail.metrics_multilabel.multilabel_metrics`
of the test scores: mAP, head/medium/tail mAP by training label counts, micro/macro F1 at a
threshold of 0.5 and at per-label thresholds tuned on the validation split, precision@k, and
the per-label AP beside the label counts.
"""

from longtail.engine.multilabel.config import (
    MULTILABEL_METHODS,
    MULTILABEL_PRESETS,
    MultiLabelConfig,
    MultiLabelMethod,
    build_criterion,
    get_multilabel_method,
    make_multilabel_config,
)
from longtail.engine.multilabel.data import (
    MultiLabelData,
    prepare_multilabel_data,
    run_identity,
)
from longtail.engine.multilabel.loop import scores, train_multilabel

__all__ = [
    "MULTILABEL_METHODS",
    "MULTILABEL_PRESETS",
    "MultiLabelConfig",
    "MultiLabelData",
    "MultiLabelMethod",
    "build_criterion",
    "get_multilabel_method",
    "make_multilabel_config",
    "prepare_multilabel_data",
    "run_identity",
    "scores",
    "train_multilabel",
]

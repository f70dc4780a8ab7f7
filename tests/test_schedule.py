"""The step lr schedule shared by the multi-label and regression engines: milestones, the lr of
an epoch, the schedule line, and the steps that cannot happen as written (printed and recorded)."""

from __future__ import annotations

import pytest

from longtail.engine.multilabel import MultiLabelConfig
from longtail.engine.regression import RegressionConfig
from longtail.engine.schedule import default_milestones

CONFIGS = {
    "multilabel": lambda **kw: MultiLabelConfig(**kw),
    "regression": lambda **kw: RegressionConfig(dataset="diamonds", **kw),
}


@pytest.mark.parametrize("make", CONFIGS.values(), ids=list(CONFIGS))
def test_default_milestones_and_lr(make):
    c = make(epochs=90, lr=1e-3)
    assert c.milestones() == default_milestones(90) == (60, 80)
    assert [c.lr_at(e) for e in (0, 59, 60, 79, 80, 89)] == pytest.approx(
        [1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]
    )
    assert c.schedule_warnings() == []
    line = c.describe_schedule()
    assert "90 epochs, Adam lr 0.001, × 0.1 from epoch 60, × 0.1 from epoch 80" in line
    assert "never" not in line


@pytest.mark.parametrize("make", CONFIGS.values(), ids=list(CONFIGS))
def test_milestones_compound_in_any_order(make):
    c = make(epochs=10, lr=1.0, lr_gamma=0.5, lr_milestones=(6, 3, 6))
    assert [c.lr_at(e) for e in (2, 3, 5, 6, 9)] == pytest.approx([1, 0.5, 0.5, 0.125, 0.125])


@pytest.mark.parametrize("make", CONFIGS.values(), ids=list(CONFIGS))
def test_steps_that_cannot_happen_are_named_once(make):
    one = make(epochs=1)  # default milestones (1, 1): both after the only epoch
    assert one.describe_schedule().startswith("schedule (0-based epochs): 1 epoch, Adam")
    assert one.schedule_warnings() == [
        "the lr step × 0.1 at epoch 1 never happens: the last epoch is 0"
    ]
    two = make(epochs=2)  # (1, 2): the first happens, the second does not
    assert two.schedule_warnings() == [
        "the lr step × 0.1 at epoch 2 never happens: the last epoch is 1"
    ]
    assert "from epoch 2 (after the last epoch: never)" in two.describe_schedule()
    zero = make(epochs=5, lr=0.01, lr_milestones=(0, 3))
    assert zero.schedule_warnings() == [
        "the lr step × 0.1 at epoch 0 is no step: it scales lr 0.01 from the start"
    ]

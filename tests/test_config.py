"""TrainConfig refuses what cannot be trained as asked, and says what its schedule is."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from longtail.engine import config as config_module
from longtail.engine.config import METHODS, PRESETS, TrainConfig, make_config

DEFERRED = [n for n, s in METHODS.items() if s.reweight == "drw" or s.resample == "drs"]


def rescaled_schedule(epochs: int) -> dict:
    return config_module.rescaled_schedule(epochs)


# ---------------------------------------------------------------------------- finite numbers
@pytest.mark.parametrize("name", ["ratio", "lr", "momentum", "weight_decay", "cb_beta"])
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"`{name}`"):
        TrainConfig(**{name: value})
    with pytest.raises(ValueError, match=f"`{name}`"):
        make_config("quick", **{name: value})


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"lr_steps": ((5, math.nan),)}, "lr_steps"),
        ({"lr_steps": ((-1, 0.1),)}, "lr_steps"),
        ({"lr_steps": ((2.5, 0.1),)}, "lr_steps"),
        ({"model": "resnet99"}, "model"),
        ({"width": 0}, "width"),
        ({"epochs": True}, "epochs"),
        ({"n_max": 0}, "n_max"),
    ],
)
def test_other_bad_values_are_refused_by_name(kw, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**kw)


# --------------------------------------------------------------------------- loss arguments
def test_loss_kwargs_are_checked_against_the_loss_signature():
    with pytest.raises(ValueError, match=r"'max_margn'.*Did you mean 'max_margin'\?"):
        TrainConfig(method="ldam-drw", loss_kwargs={"max_margn": 0.3})
    # the focal methods pass gamma themselves; a typo of the user's is checked beside it
    with pytest.raises(ValueError, match=r"'gama'.*Did you mean 'gamma'\?"):
        TrainConfig(method="cb-focal", loss_kwargs={"gama": 2.0})
    # valid for one method's loss is not valid for another's
    TrainConfig(method="mm-drw", loss_kwargs={"delta_minus": 1.2})
    with pytest.raises(ValueError, match="delta_minus"):
        TrainConfig(method="erm", loss_kwargs={"delta_minus": 1.2})


@pytest.mark.parametrize("key", ["class_counts", "weight", "reduction"])
def test_loss_kwargs_the_engine_sets_are_refused(key):
    with pytest.raises(ValueError, match=f"'{key}'.*engine"):
        TrainConfig(method="ldam", loss_kwargs={key: None})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"max_margin": -1.0}, "max_margin"), ({"scale": math.nan}, "scale")],
)
def test_loss_kwargs_values_are_checked_before_a_run(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(method="ldam", loss_kwargs=kwargs)


def test_every_method_builds_and_round_trips():
    for name, spec in METHODS.items():
        assert spec.label
        cfg = make_config("quick", method=name)
        again = TrainConfig.from_dict(cfg.to_dict())
        assert again.identity() == cfg.identity()
        assert again == cfg


# -------------------------------------------------------------------------- the schedule
@pytest.mark.parametrize("method", DEFERRED)
@pytest.mark.parametrize("epochs", [1, 6])
def test_a_deferred_method_whose_phase_never_starts_is_refused(method, epochs):
    plain = method.removesuffix("-drw")
    with pytest.raises(ValueError, match=rf"`drw_epoch`.*{method!r}.*{plain!r}"):
        TrainConfig(method=method, epochs=epochs, drw_epoch=epochs, lr_steps=())
    if epochs == 1:
        with pytest.raises(ValueError, match="drw_epoch"):
            make_config("quick", method=method, epochs=1)


def test_one_epoch_is_fine_for_a_method_without_deferral():
    cfg = make_config("quick", method="ldam", epochs=1)
    assert any("never happens" in w for w in cfg.schedule_warnings())


def test_rescaling_keeps_the_presets():
    for preset in PRESETS:
        cfg = make_config(preset)
        assert rescaled_schedule(cfg.epochs) == {
            "drw_epoch": cfg.drw_epoch,
            "lr_steps": cfg.lr_steps,
            "warmup_epochs": cfg.warmup_epochs,
        }


@given(st.integers(min_value=3, max_value=2000))
def test_rescaled_phases_stay_apart_and_inside_the_run(epochs):
    s = rescaled_schedule(epochs)
    (first, _), (second, _) = s["lr_steps"]
    assert s["warmup_epochs"] < s["drw_epoch"] == first < second < epochs
    for method in METHODS:
        cfg = make_config("quick", method=method, epochs=epochs)
        lost = ["no warm-up"] if s["warmup_epochs"] == 0 else []  # 3 epochs: said, not hidden
        assert [w[:10] for w in cfg.schedule_warnings()] == lost


def test_one_schedule_field_given_rescales_the_others():
    # a config file with epochs = 3 and warmup_epochs = 0 kept the preset's lr steps at 6, 7
    cfg = make_config("quick", epochs=3, warmup_epochs=0)
    assert cfg.lr_steps == rescaled_schedule(3)["lr_steps"] and cfg.drw_epoch == 1
    cfg = make_config("quick", method="ldam-drw", epochs=3, lr_steps=((2, 0.1),))
    assert cfg.lr_steps == ((2, 0.1),) and cfg.drw_epoch == rescaled_schedule(3)["drw_epoch"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("augment", "false"), ("flip", "no"), ("momentum", "0.9"), ("epochs", 2.5), ("lr", True)],
)
def test_fields_of_the_wrong_type_are_refused(field, value):
    # augment = "false" in a config file is a truthy string: augmentation silently stayed on
    with pytest.raises(ValueError, match=f"`{field}`"):
        make_config("quick", **{field: value})


def test_two_epochs_keep_drw_and_report_the_step_that_does_not_fit():
    """The old rescaling put DRW and both steps at epoch 2 of 2: plain LDAM at a constant lr."""
    cfg = make_config("quick", method="ldam-drw", epochs=2)
    assert cfg.drw_epoch == 1 and cfg.lr_at(1) == pytest.approx(cfg.lr * 0.01)
    step, no_warmup = cfg.schedule_warnings()
    assert no_warmup.startswith("no warm-up") and "epoch 2 never happens" in step


def test_describe_schedule():
    line = make_config("quick", method="ldam-drw").describe_schedule()
    assert "\n" not in line and "0-based" in line
    for part in ("8 epochs", "× 0.01 from epoch 6", "× 0.0001 from epoch 7", "DRW"):
        assert part in line
    assert "from epoch 6" in line.split("DRW")[1]
    paper = make_config("paper").describe_schedule()
    assert "warm-up: epochs 0-4" in paper and "DRW" not in paper
    assert (
        "class-balanced sampling from epoch 0"
        in make_config("quick", method="cb-rs").describe_schedule()
    )
    odd = TrainConfig(epochs=10, drw_epoch=2, lr_steps=((12, 0.1),))
    assert "epoch 12 (after the last epoch: never)" in odd.describe_schedule()


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"lr_steps": ((10, 0.1),)}, "epoch 10 never happens"),
        ({"lr_steps": ((0, 0.1),)}, "at epoch 0 is no step"),
        ({"lr_steps": ((5, 0.1), (5, 0.01))}, "both at epoch 5"),
        ({"lr_steps": ((7, 0.1), (5, 0.01))}, "not in epoch order"),
        ({"lr_steps": ((1, 0.1),), "warmup_epochs": 3}, "inside the warm-up"),
        ({"warmup_epochs": 12, "lr_steps": ()}, "whole run"),
        ({"method": "ldam-drw", "drw_epoch": 0}, "nothing is deferred"),
        ({"method": "ldam-drw", "drw_epoch": 1, "warmup_epochs": 3}, "DRW starts at epoch 1"),
    ],
)
def test_schedule_warnings(kw, fragment):
    cfg = TrainConfig(**{"epochs": 10, "drw_epoch": 5, "lr_steps": (), **kw})
    assert any(fragment in w for w in cfg.schedule_warnings()), cfg.schedule_warnings()


def test_presets_have_no_schedule_warnings():
    for preset in PRESETS:
        for method in METHODS:
            assert make_config(preset, method=method).schedule_warnings() == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("augment", "false"), ("lr", "0.1"), ("epochs", 2.5), ("bins", True), ("target", 3)],
)
def test_regression_fields_of_the_wrong_type_are_refused(field, value):
    from longtail.engine.regression import make_regression_config

    with pytest.raises(ValueError, match=f"`{field}`"):
        make_regression_config("quick", **{field: value})

"""Seeds are integers in 0..2**32-1 everywhere a run takes one: a larger seed overflowed the
engine's per-epoch generator seed (seed * 1_000_003 + epoch) after the run folder was written."""

from __future__ import annotations

import pytest

from longtail._validation import MAX_SEED
from longtail.bench.runner import table1_jobs
from longtail.cli import main as cli_main
from longtail.engine import TrainConfig
from longtail.engine.multilabel import MultiLabelConfig
from longtail.engine.regression import RegressionConfig

CONFIGS = [
    (TrainConfig, {"dataset": "fashion-mnist"}, "seed"),
    (MultiLabelConfig, {}, "seed"),
    (RegressionConfig, {"dataset": "diamonds"}, "seed"),
    (RegressionConfig, {"dataset": "diamonds"}, "split_seed"),
]


@pytest.mark.parametrize(("cls", "base", "field"), CONFIGS)
def test_a_seed_is_an_integer_up_to_2_to_the_32(cls, base, field):
    assert getattr(cls(**base, **{field: MAX_SEED}), field) == MAX_SEED
    for bad in (MAX_SEED + 1, 2 * 10**13, -1, True, 1.0):
        with pytest.raises((TypeError, ValueError), match=rf"`{field}` to be an integer"):
            cls(**base, **{field: bad})


def test_the_epoch_generator_takes_the_largest_seed():
    from longtail.engine.run import epoch_generator

    g = epoch_generator(MAX_SEED, 199)
    assert g.initial_seed() == MAX_SEED * 1_000_003 + 199


def test_a_grid_refuses_seeds_past_the_largest(tmp_path, capsys):
    with pytest.raises(ValueError, match="integer in 0"):
        table1_jobs("x.npz", "quick", seeds=[MAX_SEED + 1])
    base = ["bench", "table1", "--methods", "erm", "--settings", "exp100", "--dry-run"]
    base += ["--out", str(tmp_path / "t")]
    assert cli_main([*base, "--first-seed", str(MAX_SEED)]) == 0
    assert capsys.readouterr().out.split() == [f"fashion-mnist_exp100_erm_s{MAX_SEED}"]
    assert cli_main([*base, "--seeds", "2", "--first-seed", str(MAX_SEED)]) == 2
    assert f"at most {MAX_SEED}" in capsys.readouterr().err
    out = tmp_path / "run"
    argv = ["train", "--task", "regression", "--dataset", "diamonds", "--epochs", "1"]
    assert cli_main([*argv, "--seed", str(2 * 10**13), "--out", str(out)]) == 2
    assert "`seed` to be an integer in 0..4294967295" in capsys.readouterr().err
    assert not out.exists()

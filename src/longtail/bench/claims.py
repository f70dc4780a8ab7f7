"""The MM paper's claims, checked on a Table 1 grid: paired per-seed differences with 95% CIs.

A *claim* ``A vs B`` says that method ``A`` has a lower top-1 error than method ``B``. It is
checked within one recipe and one setting (dataset, profile, ratio, data), where both methods
were run: their runs are paired by seed (only seeds both ran), the differences
``d_s = err_A(s) − err_B(s)`` (top-1 error, %, at the last epoch) are summarised by their mean
and sample standard deviation, and the 95% Student-t interval
``mean ± t(0.975, n − 1) · sd / √n`` decides the verdict:

* ``"supported"``: the upper bound is below 0 (A has lower error);
* ``"contradicted"``: the lower bound is above 0 (B has lower error: the claim is not
  supported);
* ``"inconclusive"``: the interval holds 0;
* ``"inconclusive (1 seed)"``, ``"inconclusive (2 seeds)"``: fewer than :data:`MIN_SEEDS`
  pairs make no claim, whatever their interval (one gives none; two with the same difference,
  common when errors move in steps of one test image, give an interval of zero width).

Records are grouped as the tables group them (:func:`~longtail.bench.records.group_tables`):
copies of one run count once, runs of different recipes (epochs, n_max, preset, ...) or data are
never paired. :data:`CLAIMS` lists the claims checked by default; append to it to check more.

The Student-t quantile is computed here (bisection on the t distribution's CDF, written with the
regularized incomplete beta function), so that no statistics package is needed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from longtail.bench.labels import (
    METRIC_NAMES,
    column_titles,
    method_label,
    recipe_text,
    row_labels,
    varying_keys,
)
from longtail.bench.records import (
    Column,
    Row,
    Setting,
    Table,
    classification,
    content_key,
    distinct_runs,
    group_tables,
    identity,
    number,
)
from longtail.bench.tables import table_names

__all__ = [
    "CLAIMS",
    "CLAIM_TABLE_HEAD",
    "CONFIDENCE",
    "INTRO",
    "MIN_SEEDS",
    "Claim",
    "ClaimResult",
    "PairedDifference",
    "claim_row",
    "claims_json",
    "claims_markdown",
    "paired_claims",
    "paired_difference",
    "student_t_cdf",
    "t_quantile",
    "values_by_seed",
    "verdict",
    "verdict_text",
]

#: The confidence level of the intervals.
CONFIDENCE = 0.95

# The metric compared: lower is better.
METRIC = "top1_error"

#: What the report says above the claims' tables.
INTRO = (
    "A claim “A vs B” says that method A has a lower top-1 error (%, at the last epoch; lower "
    "is better) than method B. In each recipe and setting where both were run, their runs are "
    "paired by seed (only seeds both ran; runs of other recipes or data are never paired, "
    "copies of a run count once), and each pair gives a difference d = error of A − error of "
    "B, so a negative d favours A. 95% CI: mean(d) ± t(0.975, n − 1) · sd(d) / √n over the n "
    "pairs, sd the sample standard deviation. **Supported**: the interval lies below 0; "
    "**contradicted** (the claim is not supported: B has the lower error): above 0; "
    "inconclusive: it holds 0, and always with fewer than 3 seeds (one gives no interval; two "
    "with the same difference give one of zero width)."
)


class Claim(NamedTuple):
    """``method`` has a lower top-1 error than ``baseline`` (registry names of both)."""

    method: str
    baseline: str

    @property
    def label(self) -> str:
        """``"MM-DRW vs LDAM-DRW"``."""
        return f"{method_label(self.method)} vs {method_label(self.baseline)}"


#: The claims checked by default, in the order reported (the MM paper's, Kang et al. 2021),
#: then the margin losses against plain cross-entropy under the same deferred re-weighting:
#: the LDAM paper (Cao et al., NeurIPS 2019) separates its margin from DRW by comparing
#: LDAM-DRW with cross-entropy under DRW, and the MM paper's Table 1 ranks LDAM-DRW and MM-DRW
#: above its M-DRW row (ERM-DRW here). Those two were added after the
#: cpu preset's exp-100 table showed ERM-DRW ahead: the first seven alone never compare a margin
#: loss with cross-entropy under the same re-weighting, which is where that table differs.
#: A list: append a :class:`Claim` (or a ``(method, baseline)`` pair) to check another.
CLAIMS: list[Claim] = [
    Claim("erm-drw", "erm"),
    Claim("ldam-drw", "ldam"),
    Claim("mm-drw", "mm"),
    Claim("ldam-drw", "erm"),
    Claim("mm-drw", "ldam-drw"),
    Claim("mm-drw", "erm"),
    Claim("mm-ldam-drw", "mm-drw"),
    Claim("ldam-drw", "erm-drw"),
    Claim("mm-drw", "erm-drw"),
]


# ---- the Student t distribution -----------------------------------------------------------------
def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    tiny = 1e-300
    c = 1.0
    d = 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        # the even term, then the odd one
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for coef in (even, odd):
            d = 1.0 + coef * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + coef / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 3e-16:
            return h
    return h  # pragma: no cover - converges in far fewer steps for the t distribution


def _incomplete_beta(a: float, b: float, x: float, y: float) -> float:
    """The regularized incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 ≤ x ≤ 1``;
    ``y = 1 − x``, given by the caller, who can compute it without cancellation."""
    if x <= 0.0:
        return 0.0
    if y <= 0.0:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    )
    # the fraction converges fast below the mean of the beta distribution; above it, use the
    # symmetry I_x(a, b) = 1 − I_{1−x}(b, a)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, y) / b


def student_t_cdf(t: float, df: float) -> float:
    """``P(T ≤ t)`` for Student's t distribution with ``df > 0`` degrees of freedom.

    Example:
        >>> round(student_t_cdf(0.0, 5), 12), round(student_t_cdf(1.0, 1), 12)
        (0.5, 0.75)
    """
    if not df > 0:
        raise ValueError(f"Expected `df` > 0, got {df}.")
    if math.isnan(t):
        return math.nan
    if math.isinf(t):
        return 1.0 if t > 0 else 0.0
    # P(|T| > |t|) = I_{df / (df + t²)}(df / 2, 1 / 2)
    tail = 0.5 * _incomplete_beta(df / 2.0, 0.5, df / (df + t * t), t * t / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t distribution with ``df > 0`` degrees of freedom.

    Found by bisection on :func:`student_t_cdf` to about 1e-12 (relative); no statistics package
    is needed.

    Example:
        >>> round(t_quantile(0.975, 2), 3), round(t_quantile(0.975, 10), 3)
        (4.303, 2.228)

    Raises:
        ValueError: If ``p`` is not in (0, 1) or ``df`` is not positive.
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"Expected `p` in (0, 1), got {p}.")
    if not df > 0:
        raise ValueError(f"Expected `df` > 0, got {df}.")
    if p == 0.5:
        return 0.0
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2.0
    while hi - lo > 1e-13 * max(1.0, hi):
        mid = (lo + hi) / 2.0
        if mid in (lo, hi):
            break
        if student_t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2.0


# ---- pairing ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClaimResult:
    """One claim checked in one setting of one recipe.

    Attributes:
        claim: The claim (method vs baseline).
        label: Its name in the report: ``"MM-DRW vs LDAM-DRW"``, with loss settings where a
            method was run with several (the table's row labels).
        table: The Table 1 table the runs are in (``"Table 1"``, ``"Table 1a"``, ...).
        recipe: The recipe of that table (its identity less setting, method and seed).
        fingerprinted: Whether the runs' identities name their data.
        setting: ``(dataset, profile, ratio)``.
        data: The data's fingerprint (``None``: not recorded).
        seeds: The seeds both methods ran, sorted.
        method_errors: The method's top-1 error (%) per seed.
        baseline_errors: The baseline's top-1 error (%) per seed.
        differences: ``method error − baseline error`` per seed (negative: the method is better).
        mean: The mean difference.
        std: The sample standard deviation of the differences (``None`` for one seed).
        t: ``t(0.975, n − 1)`` (``None`` for one seed).
        ci: The 95% interval ``(low, high)`` (``None`` for one seed).
        verdict: ``"supported"``, ``"contradicted"``, ``"inconclusive"``,
            ``"inconclusive (1 seed)"`` or ``"inconclusive (2 seeds)"``.
    """

    claim: Claim
    label: str
    table: str
    recipe: dict[str, Any]
    fingerprinted: bool
    setting: Setting
    data: Any
    seeds: tuple[Any, ...]
    method_errors: tuple[float, ...]
    baseline_errors: tuple[float, ...]
    differences: tuple[float, ...]
    mean: float
    std: float | None
    t: float | None
    ci: tuple[float, float] | None
    verdict: str

    @property
    def n(self) -> int:
        """The number of pairs (distinct seeds both methods ran)."""
        return len(self.seeds)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values (the per-seed errors and differences listed by seed)."""
        dataset, profile, ratio = self.setting
        return {
            "claim": self.label,
            "method": self.claim.method,
            "baseline": self.claim.baseline,
            "table": self.table,
            "recipe": self.recipe,
            "fingerprinted": self.fingerprinted,
            "dataset": dataset,
            "profile": profile,
            "ratio": ratio,
            "data": self.data,
            "n": self.n,
            "mean": self.mean,
            "std": self.std,
            "t": self.t,
            "ci": list(self.ci) if self.ci is not None else None,
            "verdict": self.verdict,
            "pairs": [
                {"seed": s, "method_error": a, "baseline_error": b, "difference": d}
                for s, a, b, d in zip(
                    self.seeds,
                    self.method_errors,
                    self.baseline_errors,
                    self.differences,
                    strict=True,
                )
            ],
        }


#: The fewest seeds (pairs) that can decide a claim.
MIN_SEEDS = 3


def verdict(
    ci: tuple[float, float] | None, *, higher: bool = False, seeds: int | None = None
) -> str:
    """The verdict of a claim from the interval of ``method − baseline`` (``None``: one seed):
    for a metric where lower is better (an error), a difference below 0 supports the claim;
    ``higher=True`` (an mAP), above 0. With ``seeds`` (the pairs behind the interval) below
    :data:`MIN_SEEDS`, inconclusive whatever the interval."""
    if ci is None or seeds == 1:
        return "inconclusive (1 seed)"
    if seeds is not None and seeds < MIN_SEEDS:
        return f"inconclusive ({seeds} seeds)"
    low, high = (-ci[1], -ci[0]) if higher else ci
    if high < 0:
        return "supported"
    if low > 0:
        return "contradicted"
    return "inconclusive"


class PairedDifference(NamedTuple):
    """Two methods' values paired by seed: ``differences = a − b`` per seed, their mean, sample
    std, ``t(0.975, n − 1)`` and 95% interval (the last three ``None`` for one pair)."""

    seeds: tuple[Any, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    differences: tuple[float, ...]
    mean: float
    std: float | None
    t: float | None
    ci: tuple[float, float] | None


def paired_difference(a: dict[Any, float], b: dict[Any, float]) -> PairedDifference | None:
    """``a`` and ``b`` (``{seed: value}``) paired on the seeds both have, with the Student-t
    interval of the mean difference; ``None`` when they share no seed."""
    seeds = tuple(sorted(set(a) & set(b), key=_seed_order))
    if not seeds:
        return None
    va = tuple(a[s] for s in seeds)
    vb = tuple(b[s] for s in seeds)
    diffs = tuple(x - y for x, y in zip(va, vb, strict=True))
    n = len(diffs)
    mean = sum(diffs) / n
    std = t = ci = None
    if n > 1:
        std = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
        t = t_quantile(0.5 + CONFIDENCE / 2, n - 1)
        half = t * std / math.sqrt(n)
        ci = (mean - half, mean + half)
    return PairedDifference(seeds, va, vb, diffs, mean, std, t, ci)


def _seed_order(seed: Any) -> tuple[str, Any]:
    return ("", seed) if isinstance(seed, (int, float)) else (type(seed).__name__, str(seed))


def values_by_seed(runs: Iterable[dict[str, Any]], metric: str = METRIC) -> dict[Any, float]:
    """``{seed: metrics[metric]}`` of the runs of one cell (default the top-1 error); runs
    without a seed or a finite value left out. Two records of one seed (one run under two
    benches) count once: the first by :func:`~longtail.bench.records.content_key`."""
    out: dict[Any, float] = {}
    for rec in sorted(runs, key=content_key):
        seed = identity(rec).get("seed")
        value = number((rec.get("metrics") or {}).get(metric))
        if seed is None or value is None or not math.isfinite(value) or seed in out:
            continue
        out[seed] = value
    return out


def _result(
    claim: Claim,
    label: str,
    table: Table,
    name: str,
    column: Column,
    method: dict[Any, float],
    baseline: dict[Any, float],
) -> ClaimResult | None:
    pair = paired_difference(method, baseline)
    if pair is None:
        return None
    return ClaimResult(
        claim=claim,
        label=label,
        table=name,
        recipe=table.recipe,
        fingerprinted=table.fingerprinted,
        setting=column.setting,
        data=column.data,
        seeds=pair.seeds,
        method_errors=pair.a,
        baseline_errors=pair.b,
        differences=pair.differences,
        mean=pair.mean,
        std=pair.std,
        t=pair.t,
        ci=pair.ci,
        verdict=verdict(pair.ci, seeds=len(pair.seeds)),
    )


def _named_tables(records: Iterable[dict[str, Any]]) -> list[tuple[Table, str, list[str]]]:
    """The Table 1 tables of ``records``, named as :func:`~longtail.bench.tables.table1_markdown`
    names them, with the recipe keys their captions state."""
    tables = group_tables(distinct_runs(classification(records), warn=False))
    names = table_names("Table 1", len(tables))
    varying = varying_keys(tables)
    return [(t, n, varying) for t, n in zip(tables, names, strict=True)]


def _claims(claims: Iterable[Claim | tuple[str, str]] | None) -> list[Claim]:
    return [Claim(*c) for c in (CLAIMS if claims is None else claims)]


def _table_results(table: Table, name: str, claims: Sequence[Claim]) -> list[ClaimResult]:
    labels = row_labels(table.rows)
    out = []
    for column in table.columns:
        for claim in claims:
            rows_a = [r for r in table.rows if r.method == claim.method]
            rows_b = [r for r in table.rows if r.method == claim.baseline]
            for ra in rows_a:
                for rb in rows_b:
                    result = _result(
                        claim,
                        _label(ra, rb, labels),
                        table,
                        name,
                        column,
                        values_by_seed(table.runs(ra, column)),
                        values_by_seed(table.runs(rb, column)),
                    )
                    if result is not None:
                        out.append(result)
    return out


def _label(a: Row, b: Row, labels: dict[Row, str]) -> str:
    """``"MM-DRW vs ERM"``; a row's loss settings shown where its label shows them."""
    return f"{labels[a]} vs {labels[b]}"


def paired_claims(
    records: Iterable[dict[str, Any]],
    claims: Iterable[Claim | tuple[str, str]] | None = None,
) -> list[ClaimResult]:
    """Check ``claims`` on Table 1 records: paired per-seed differences with 95% intervals.

    For every recipe (:func:`~longtail.bench.records.group_tables`: copies of a run count once,
    runs that differ in epochs, n_max, preset, model, ... are kept apart), every setting and data
    in it, and every claim ``A vs B`` whose two methods both have runs there, the runs are paired
    by seed (only seeds both ran), ``d_s = err_A(s) − err_B(s)``, and the 95% Student-t interval
    of the mean difference gives the verdict (see the module's docstring). A method run with
    several loss settings in one recipe is paired row by row (each row a configuration).

    MM ablation and regression records are left out; so are runs without a seed or without a
    finite top-1 error.

    Example:
        >>> recs = [
        ...     {"method": m, "dataset": "d", "profile": "exp", "ratio": 100, "seed": s,
        ...      "metrics": {"top1_error": e}}
        ...     for m, errors in [("mm-drw", (20.0, 21.0, 22.5)), ("erm", (25.0, 25.5, 28.0))]
        ...     for s, e in enumerate(errors)
        ... ]
        >>> [(r.label, r.n, round(r.mean, 2), r.verdict) for r in paired_claims(recs)]
        [('MM-DRW vs ERM', 3, -5.0, 'supported')]

    Args:
        records: Results records (:func:`~longtail.bench.records.load_records`).
        claims: ``(method, baseline)`` pairs (:class:`Claim`); default :data:`CLAIMS` as it is
            when called.

    Returns:
        One :class:`ClaimResult` per recipe, setting, claim (and row of a method run with
        several loss settings) that has at least one pair, in table, setting and claim order.
    """
    wanted = _claims(claims)
    out = []
    for table, name, _ in _named_tables(records):
        out += _table_results(table, name, wanted)
    return out


# ---- the report's section -----------------------------------------------------------------------
def _signed(value: float) -> str:
    return f"{value:+.2f}"


def verdict_text(verdict: str, baseline: str, better: str = "lower") -> str:
    """A verdict as a claims table shows it: ``"**contradicted** (ERM lower)"`` names the
    ``baseline`` (its display label) and the direction that is ``better``."""
    if verdict == "supported":
        return "**supported**"
    if verdict == "contradicted":
        return f"**contradicted** ({baseline} {better})"
    return verdict


#: The head of a claims table, whose rows :func:`claim_row` writes.
CLAIM_TABLE_HEAD = (
    "| Claim | Seeds | Mean difference | 95% CI | Verdict | Per seed (A − B) |",
    "|:---|---:|---:|---:|:---|:---|",
)


def claim_row(
    label: str,
    seeds: Sequence[Any],
    differences: Sequence[float],
    mean: float,
    ci: Sequence[float] | None,
    verdict: str,
) -> str:
    """One row of a claims table: the claim, the seeds paired, the mean difference, the 95%
    interval (``—`` for one seed), the verdict as shown, and each seed's difference."""
    shown_ci = "—" if ci is None else f"[{_signed(ci[0])}, {_signed(ci[1])}]"
    per_seed = ", ".join(f"s{s}: {_signed(d)}" for s, d in zip(seeds, differences, strict=True))
    return f"| {label} | {len(seeds)} | {_signed(mean)} | {shown_ci} | {verdict} | {per_seed} |"


def _part(
    table: Table, name: str, varying: list[str], several: bool, results: list[ClaimResult]
) -> list[str]:
    parts = []
    for column, title in zip(table.columns, column_titles(table.columns), strict=True):
        mine = [r for r in results if (r.setting, r.data) == (column.setting, column.data)]
        if not mine:
            continue
        where = f"{title}, {name}" if several else title
        # the recipe of this setting's runs only: a natural-profile column beside an exp one
        # has no n_max of its own (the whole table's caption would give it the other's)
        own = Table(
            recipe=table.recipe,
            fingerprinted=table.fingerprinted,
            cells={k: v for k, v in table.cells.items() if k[1] == column},
        )
        caption = (
            f"**Claims, {where}.** {METRIC_NAMES[METRIC]} at the last epoch, lower is better; "
            "A − B per seed, runs paired by seed within this recipe and data; 95% Student-t "
            f"interval of the mean difference. {recipe_text(own, varying)}"
        ).strip()
        lines = list(CLAIM_TABLE_HEAD)
        for r in mine:
            shown = verdict_text(r.verdict, method_label(r.claim.baseline))
            lines.append(claim_row(r.label, r.seeds, r.differences, r.mean, r.ci, shown))
        parts.append(caption + "\n\n" + "\n".join(lines))
    return parts


def claims_markdown(
    records: Iterable[dict[str, Any]],
    claims: Iterable[Claim | tuple[str, str]] | None = None,
) -> str:
    """The claims as markdown: one table per setting and recipe with at least one pair.

    :data:`INTRO` first (how the claims are checked), then the tables. Rows: the claim, the
    number of seeds paired, the mean difference in top-1 error (%), the 95%
    interval (``—`` for one seed), the verdict and each seed's difference. Each caption states
    the recipe, and the table's name (Table 1a, ...) when there are several.

    Args:
        records: Results records.
        claims: As in :func:`paired_claims` (default :data:`CLAIMS`).

    Returns:
        Markdown text, or ``""`` when no claim has a pair.
    """
    wanted = _claims(claims)
    named = _named_tables(records)
    parts = []
    for table, name, varying in named:
        results = _table_results(table, name, wanted)
        parts += _part(table, name, varying, len(named) > 1, results)
    return "\n\n".join([INTRO, *parts]) if parts else ""


def claims_json(results: Sequence[ClaimResult]) -> dict[str, Any]:
    """What ``claims.json`` holds: how the claims were checked, and every result."""
    return {
        "metric": METRIC,
        "lower_is_better": True,
        "difference": "method error minus baseline error, per seed (negative favours method)",
        "pairing": "runs of one recipe, setting and data with the same seed",
        "interval": "mean ± t(0.975, n − 1) · sd / √n (Student t, sample sd)",
        "confidence": CONFIDENCE,
        "claims": [r.to_dict() for r in results],
    }

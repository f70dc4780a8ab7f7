"""Choosing a recipe by convergence on a validation split, never by test numbers.

The records of ``longtail bench preset-selection`` (:func:`longtail.bench.runner.
preset_selection_jobs`) train every candidate recipe at its own length and at twice it, for a
few methods and seeds, and evaluate on a balanced validation split held out of the training
set. A candidate is judged by three criteria only:

(a) **converged**: for every method, the mean validation error at the candidate's length is
    within the seed noise of the mean at twice the length: ``|mean₂ₓ − mean₁ₓ| ≤ 2·SE`` with
    ``SE = sqrt(s₁²/n₁ + s₂²/n₂)`` from the seed standard deviations (about a 95% band for the
    difference of two means; with a single seed at either length there is no noise estimate
    and the verdict is "undetermined");
(b) **the DRW phase re-balances**: the deferred phase at lr × 0.01 has at least
    :data:`DRW_MIN_EPOCHS` epochs and :data:`DRW_MIN_STEPS` optimisation steps, and the DRW
    methods' validation error has levelled off by its end (it moves by at most
    :data:`PLATEAU_POINTS` points, mean over seeds, in the last epoch at that rate);
(c) **fits the machine**: a run takes at most :data:`TIME_LIMIT_S` seconds: a run of the
    candidate alone on the idle machine (``bench preset-selection --timing``; the selection
    runs themselves share the machine and take longer), else the median of its runs.

The chosen candidate is the first one, in the cost order of the candidate list, that meets all
three. Nothing here reads a test-set number.

The multi-label cpu preset is judged the same way (:func:`select_multilabel_preset`, records of
``longtail bench multilabel-preset-selection``): (a) on the validation mAP of the mosaic set's
own validation split, and (c) with :data:`MULTILABEL_TIME_LIMIT_S`. Its recipe has no deferred
phase, so (b) does not apply.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from longtail.bench.labels import plural
from longtail.bench.records import distinct_runs, method_rank

__all__ = [
    "DRW_MIN_EPOCHS",
    "DRW_MIN_STEPS",
    "MULTILABEL_TIME_LIMIT_S",
    "PLATEAU_POINTS",
    "TIME_LIMIT_S",
    "multilabel_selection_markdown",
    "select_multilabel_preset",
    "select_preset",
    "selection_markdown",
]

TIME_LIMIT_S = 300.0  # (c): five minutes of the 2-core machine for an exp-100 run
DRW_MIN_EPOCHS = 2  # (b): epochs of DRW at lr × 0.01
DRW_MIN_STEPS = 300  # (b): optimisation steps of DRW at lr × 0.01
PLATEAU_POINTS = 0.5  # (b): largest move of the validation error in the last such epoch
# (c) for the multi-label preset: ten minutes for a run alone on the idle machine, so that its
# 3-seed benchmark (10 methods, 30 runs, two at a time) takes about 30 x 10 / 2 = 2.5 hours of
# the 2-core machine, somewhat more in practice (two runs side by side, one thread each, are
# each slower than one run alone on both cores)
MULTILABEL_TIME_LIMIT_S = 600.0


def _error(rec: dict[str, Any]) -> float | None:
    v = rec.get("metrics", {}).get("top1_error")
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def _stats(values: Sequence[float]) -> dict[str, Any]:
    n = len(values)
    mean = statistics.fmean(values) if n else float("nan")
    sd = statistics.stdev(values) if n > 1 else float("nan")
    return {"n": n, "mean": mean, "std": sd, "values": list(values)}


def _drw_phase(rec: dict[str, Any]) -> dict[str, Any] | None:
    """Epochs and steps of DRW at lr × 0.01, and the move of the error in its last epoch."""
    curve = rec.get("curve")
    cfg = rec.get("config", {})
    if not curve or cfg.get("reweight") != "drw":
        return None
    base = float(cfg.get("lr", 0.1))
    phase = [
        p
        for p in curve
        if p.get("reweighted") and math.isclose(float(p.get("lr", 0)), base * 0.01, rel_tol=1e-6)
    ]
    train_size = int(rec.get("data", {}).get("train_size", 0))
    steps_per_epoch = math.ceil(train_size / int(cfg.get("batch_size", 128))) if train_size else 0
    errs = [p.get("val_top1_error") for p in phase]
    move = None
    if len(errs) >= 2 and errs[-1] is not None and errs[-2] is not None:
        move = abs(float(errs[-1]) - float(errs[-2]))
    return {"epochs": len(phase), "steps": len(phase) * steps_per_epoch, "last_move": move}


def _fingerprint(rec: dict[str, Any]) -> Any:
    return (rec.get("data") or {}).get("fingerprint")


def _convergence(one_values: Sequence[float], two_values: Sequence[float]) -> dict[str, Any]:
    """Criterion (a) for one method: the two lengths' seed statistics, the difference of the
    means (twice as long minus own length), its SE and whether ``|difference| <= 2·SE``."""
    one, two = _stats(one_values), _stats(two_values)
    diff = two["mean"] - one["mean"] if one["n"] and two["n"] else float("nan")
    se = (
        math.sqrt(one["std"] ** 2 / one["n"] + two["std"] ** 2 / two["n"])
        if one["n"] > 1 and two["n"] > 1
        else float("nan")
    )
    converged = None if math.isnan(se) or math.isnan(diff) else abs(diff) <= 2 * se
    return {"1x": one, "2x": two, "difference": diff, "se": se, "converged": converged}


def _alone_seconds(
    records: Iterable[dict[str, Any]],
    bench: str,
    runs: Sequence[dict[str, Any]],
    spec: Mapping[str, Any],
) -> list[float]:
    """Seconds of the timing runs (``"bench": bench``, one run alone on the idle machine) of
    the candidate ``spec``, on the data its selection ``runs`` used (any data without them)."""
    data = {_fingerprint(r) for r in runs if _matches(r, spec, 1) or _matches(r, spec, 2)}
    return [
        float(r["seconds"])
        for r in records
        if r.get("bench") == bench
        and isinstance(r.get("seconds"), int | float)
        and _matches(r, spec, 1)
        and (not data or _fingerprint(r) in data)
    ]


def _candidate_specs(
    candidates: Mapping[str, Mapping[str, Any]] | Sequence[str] | None,
    table: Mapping[str, Mapping[str, Any]],
) -> dict[str, dict[str, Any]]:
    """``{name: {"model", "width", "epochs", ...}}`` in cost order: ``candidates`` given as specs,
    or names of ``table`` (default: all of ``table``, the runner's list)."""
    if candidates is None:
        return {k: dict(v) for k, v in table.items()}
    if isinstance(candidates, Mapping):
        return {k: dict(v) for k, v in candidates.items()}
    return {k: dict(table[k]) for k in candidates}


def _matches(rec: dict[str, Any], spec: Mapping[str, Any], k: int) -> bool:
    """Whether ``rec``'s config is the candidate ``spec`` at ``k`` times its length."""
    cfg = rec.get("config", {})
    want = {**spec, "epochs": int(spec["epochs"]) * k}
    return all(cfg.get(key) == v for key, v in want.items())


def select_preset(
    records: Iterable[dict[str, Any]],
    candidates: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    timing: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Judge every candidate of the preset-selection ``records`` by (a), (b) and (c).

    Args:
        records: Results records; only those with ``"bench": "preset-selection"`` are used, and
            only those evaluated on the validation split (``"eval_split": "validation"``).
        candidates: The candidates in cost order: ``{name: {"model", "width", "epochs"}}``, or
            names of :data:`longtail.bench.runner.PRESET_CANDIDATES` (default: all of it).
            A run belongs to a candidate by its config (model, width, and the candidate's
            length or twice it), so one run can serve two candidates: the 80-epoch runs that
            test a 40-epoch candidate are the own-length runs of an 80-epoch one.
        timing: Seconds per run measured apart, by candidate (overrides the records' seconds,
            which a loaded machine inflates). Records of ``"bench": "preset-timing"`` (a run
            alone on the machine, ``bench preset-selection --timing``) give it too.

    Returns:
        ``{"candidates": [{"name", "methods": {method: {"1x", "2x", "difference", "se",
        "converged"}}, "drw": {...}, "seconds", "timing_source", "a", "b", "c", "chosen"}],
        "chosen": name or None, "not_run": [names of candidates without a run]}``.
    """
    from longtail.bench.runner import PRESET_CANDIDATES

    records = distinct_runs(list(records), warn=False)
    runs = [
        r
        for r in records
        if r.get("bench") == "preset-selection" and r.get("eval_split") == "validation"
    ]
    specs = _candidate_specs(candidates, PRESET_CANDIDATES)
    timing = dict(timing or {})
    for name, spec in specs.items():  # runs alone on an idle machine (--timing)
        alone = _alone_seconds(records, "preset-timing", runs, spec)
        if alone and name not in timing:
            timing[name] = min(alone)
    by: dict[str, dict[str, dict[int, list[dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for name, spec in specs.items():  # a run serves every candidate it is a length of
        for r in runs:
            for k in (1, 2):
                if _matches(r, spec, k):
                    by[name][str(r.get("method"))][k].append(r)
    out: list[dict[str, Any]] = []
    chosen = None
    for name in [n for n in specs if n in by]:
        methods = by.get(name, {})
        verdicts: dict[str, Any] = {}
        for method in sorted(methods, key=method_rank):
            lengths = methods[method]
            verdicts[method] = _convergence(
                [e for r in lengths.get(1, []) if (e := _error(r)) is not None],
                [e for r in lengths.get(2, []) if (e := _error(r)) is not None],
            )
        drw = [d for m in methods.values() for r in m.get(1, []) if (d := _drw_phase(r))]
        moves = [d["last_move"] for d in drw if d["last_move"] is not None]
        drw_info = {
            "epochs": min((d["epochs"] for d in drw), default=0),
            "steps": min((d["steps"] for d in drw), default=0),
            "last_move": statistics.fmean(moves) if moves else None,
        }
        seconds = [float(r["seconds"]) for m in methods.values() for r in m.get(1, [])]
        secs, source, c = _criterion_c(timing.get(name), seconds, TIME_LIMIT_S)
        a = _all_converged(verdicts)
        b = (
            drw_info["epochs"] >= DRW_MIN_EPOCHS
            and drw_info["steps"] >= DRW_MIN_STEPS
            and drw_info["last_move"] is not None
            and drw_info["last_move"] <= PLATEAU_POINTS
        )
        entry = {
            "name": name,
            "methods": verdicts,
            "drw": drw_info,
            "seconds": secs,
            "timing_source": source,
            "a": a,
            "b": b,
            "c": c,
            "chosen": False,
        }
        if chosen is None and a and b and c:
            chosen = name
            entry["chosen"] = True
        out.append(entry)
    return {"candidates": out, "chosen": chosen, "not_run": [n for n in specs if n not in by]}


def _pm(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "–"
    sd = "" if math.isnan(s["std"]) else f" ± {s['std']:.2f}"
    return f"{s['mean']:.2f}{sd} (n={s['n']})"


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "–"
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


def _all_converged(verdicts: Mapping[str, dict[str, Any]]) -> bool | None:
    """Criterion (a) over the methods: failed as soon as one method is shown not converged,
    passed when every one is converged, undetermined otherwise (a method without both lengths
    on two seeds, or no method)."""
    flags = [v["converged"] for v in verdicts.values()]
    if any(f is False for f in flags):
        return False
    return True if flags and all(f is True for f in flags) else None


def _criterion_c(
    alone: float | None, shared: Sequence[float], limit: float
) -> tuple[float, str, bool | None]:
    """Criterion (c): the seconds a run takes, where they come from, and whether they are
    within ``limit``. A run ``alone`` on the idle machine decides it; without one, the median
    of the ``shared`` runs (which shared the machine) is an upper bound: within the limit it
    passes, above it (c) is undetermined until a run alone is timed (``--timing``)."""
    if alone is not None:
        secs, source = float(alone), "one run alone on the machine"
    else:
        secs = statistics.median(shared) if shared else float("nan")
        source = "median of its runs: an upper bound when they shared the machine"
    if not math.isfinite(secs):
        return secs, source, None
    if secs <= limit:
        return secs, source, True
    return secs, source, False if alone is not None else None


def _yes(v: Any) -> str:
    return "undetermined" if v is None else ("yes" if v else "no")


def _convergence_rows(methods: Mapping[str, dict[str, Any]]) -> list[str]:
    """Criterion (a) as markdown table lines: a row per method."""
    rows = [
        "| Method | own length | twice as long | difference | 2·SE | converged |",
        "|:---|---:|---:|---:|---:|:---|",
    ]
    for method, v in methods.items():
        diff = "–" if math.isnan(v["difference"]) else f"{v['difference']:+.2f}"
        tol = "–" if math.isnan(v["se"]) else f"{2 * v['se']:.2f}"
        rows.append(
            f"| {method} | {_pm(v['1x'])} | {_pm(v['2x'])} | {diff} | {tol} | "
            f"{_yes(v['converged'])} |"
        )
    return rows


def selection_markdown(
    records: Iterable[dict[str, Any]],
    candidates: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
    timing: dict[str, float] | None = None,
) -> str:
    """The selection as markdown: one table per candidate and the verdict; ``""`` if none."""
    result = select_preset(records, candidates, timing)
    if not result["candidates"]:
        return ""
    parts = [
        "Validation top-1 error (%), balanced validation split held out of the training set "
        "before the profile (the test set is not used), mean ± sample std over seeds. A method "
        "is converged when twice the training length moves its mean by at most 2·SE (SE from "
        "the seed spread of both lengths)."
    ]
    for c in result["candidates"]:
        rows = _convergence_rows(c["methods"])
        d = c["drw"]
        move = "–" if d["last_move"] is None else f"{d['last_move']:.2f}"
        mins = _duration(c["seconds"])
        verdict = "**chosen**" if c["chosen"] else "not chosen"
        parts.append(
            f"**{c['name']}** ({verdict}): (a) converged: {_yes(c['a'])}; (b) DRW at lr × 0.01: "
            f"{plural(d['epochs'], 'epoch')}, {plural(d['steps'], 'step')}, last-epoch move "
            f"{move} points "
            f"(needs ≥ {DRW_MIN_EPOCHS}, ≥ {DRW_MIN_STEPS}, ≤ {PLATEAU_POINTS}): "
            f"{_yes(c['b'])}; (c) {mins} a run ({c['timing_source']}; needs ≤ "
            f"{TIME_LIMIT_S / 60:g} min): {_yes(c['c'])}.\n\n" + "\n".join(rows)
        )
    chosen = result["chosen"]
    if result["not_run"]:
        parts.append(f"Not run yet: {', '.join(result['not_run'])}.")
    parts.append(
        f"Chosen: **{chosen}**, the first candidate in cost order that meets (a), (b) and (c)."
        if chosen
        else "No candidate meets (a), (b) and (c) yet."
    )
    return "\n\n".join(parts)


# ---- the multi-label preset ------------------------------------------------------------------
def _val_map(rec: dict[str, Any]) -> float | None:
    v = rec.get("metrics", {}).get("val_map")
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else None


def select_multilabel_preset(
    records: Iterable[dict[str, Any]],
    candidates: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
) -> dict[str, Any]:
    """Judge the multi-label candidates by (a) on validation mAP and (c).

    Args:
        records: Results records; only ``"bench": "multilabel-preset-selection"`` records
            evaluated on the validation split are used (their ``metrics.val_map``).
        candidates: ``{name: {"model", "width", "epochs", "lr"}}`` in cost order (a run
            belongs to a candidate when its config has every one of these, at the candidate's
            length or twice it), or names of
            :data:`longtail.bench.runner.MULTILABEL_CANDIDATES` (default: all of it).

    Returns:
        ``{"candidates": [{"name", "methods": {method: {"1x", "2x", "difference", "se",
        "converged"}}, "seconds", "timing_source", "a", "c", "chosen"}], "chosen",
        "not_run"}``. ``seconds`` is a run of the candidate alone on the idle machine (a
        ``"bench": "multilabel-preset-timing"`` record: ``bench multilabel-preset-selection
        --timing --jobs 1``), else the median of its own-length runs (which share the machine:
        an upper bound).
    """
    from longtail.bench.runner import MULTILABEL_CANDIDATES

    specs = _candidate_specs(candidates, MULTILABEL_CANDIDATES)
    records = distinct_runs(list(records), warn=False)
    runs = [
        r
        for r in records
        if r.get("bench") == "multilabel-preset-selection" and r.get("eval_split") == "validation"
    ]
    out: list[dict[str, Any]] = []
    chosen = None
    for name, spec in specs.items():
        by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        seconds: list[float] = []
        for r in runs:
            for k in (1, 2):
                if _matches(r, spec, k):
                    if (v := _val_map(r)) is not None:
                        by[str(r.get("method"))][k].append(v)
                    if k == 1 and isinstance(r.get("seconds"), int | float):
                        seconds.append(float(r["seconds"]))
        timed = _alone_seconds(records, "multilabel-preset-timing", runs, spec)
        if not by and not timed:
            continue
        verdicts = {
            m: _convergence(by[m].get(1, []), by[m].get(2, [])) for m in sorted(by, key=method_rank)
        }
        a = _all_converged(verdicts)
        alone = min(timed) if timed else None
        secs, source, c = _criterion_c(alone, seconds, MULTILABEL_TIME_LIMIT_S)
        entry = {"name": name, "methods": verdicts, "seconds": secs, "a": a, "c": c}
        entry["timing_source"] = source
        entry["worst"] = _worst_move(verdicts)
        entry["chosen"] = chosen is None and bool(a) and c is True
        if entry["chosen"]:
            chosen = name
        out.append(entry)
    names = {c["name"] for c in out}
    # with none converged: the candidate that fits (c) whose worst method moves least, in units
    # of its 2·SE, when trained twice as long (every method judged)
    fits = [c for c in out if c["c"] is True and c["worst"] is not None]
    closest = min(fits, key=lambda c: c["worst"])["name"] if fits and chosen is None else None
    return {
        "candidates": out,
        "chosen": chosen,
        "closest": closest,
        "not_run": [n for n in specs if n not in names],
    }


def _worst_move(verdicts: Mapping[str, dict[str, Any]]) -> float | None:
    """The largest ``|difference| / (2·SE)`` over the methods: how far from converged the
    least converged method is (``<= 1``: converged); ``None`` unless every method is judged."""
    if not verdicts or any(v["converged"] is None for v in verdicts.values()):
        return None
    return max(
        abs(v["difference"]) / (2 * v["se"]) if v["se"] > 0 else math.inf for v in verdicts.values()
    )


def _validation_data_text(records: Iterable[dict[str, Any]]) -> str:
    """The data the selection was judged on: each data set, its validation size, and the
    labels without a validation positive (whose AP does not exist: mAP leaves them out)."""
    seen: dict[Any, dict[str, Any]] = {}
    for r in records:
        if r.get("bench") == "multilabel-preset-selection":
            seen.setdefault(_fingerprint(r), r)
    texts = []
    for r in seen.values():
        size = (r.get("data") or {}).get("val_size")
        counts = r.get("val_label_counts") or []
        names = r.get("label_names") or [str(i) for i in range(len(counts))]
        text = f"{r.get('dataset')}: {size} validation examples"
        if counts:
            text += f", {min(counts)} to {max(counts)} positives a label"
        missing = [str(n) for n, c in zip(names, counts, strict=False) if not c]
        if missing:
            text += (
                f" (**{', '.join(missing)} without a validation positive**: left out of the "
                "mAP, which then judges the other labels only)"
            )
        texts.append(text)
    return (" Data: " + "; ".join(texts) + ".") if texts else ""


def multilabel_selection_markdown(
    records: Iterable[dict[str, Any]],
    candidates: Mapping[str, Mapping[str, Any]] | Sequence[str] | None = None,
) -> str:
    """The multi-label selection as markdown: a table per candidate, the verdict; ``""`` if
    there are no such records."""
    records = list(records)  # read twice: the verdicts, then the data they were judged on
    result = select_multilabel_preset(records, candidates)
    if not result["candidates"]:
        return ""
    parts = [
        "Validation mAP (%), the data set's own validation split (the test split is never "
        "scored), mean ± sample std over seeds. A method is converged when twice the training "
        "length moves its mean by at most 2·SE (SE from the seed spread of both lengths)."
        + _validation_data_text(records)
    ]
    for c in result["candidates"]:
        rows = _convergence_rows(c["methods"]) if c["methods"] else ["(no selection runs yet)"]
        mins = _duration(c["seconds"])
        verdict = "**chosen**" if c["chosen"] else "not chosen"
        parts.append(
            f"**{c['name']}** ({verdict}): (a) converged: {_yes(c['a'])}; (c) {mins} a run "
            f"({c['timing_source']}; needs ≤ "
            f"{MULTILABEL_TIME_LIMIT_S / 60:g} min): {_yes(c['c'])}.\n\n" + "\n".join(rows)
        )
    if result["not_run"]:
        parts.append(f"Not run yet: {', '.join(result['not_run'])}.")
    chosen = result["chosen"]
    parts.append(
        f"Chosen: **{chosen}**, the first candidate in cost order that meets (a) and (c)."
        if chosen
        else "No candidate meets (a) and (c) yet."
    )
    closest = result["closest"]
    if closest:
        worst = {c["name"]: c["worst"] for c in result["candidates"] if c["c"] is True}
        others = [w for n, w in worst.items() if n != closest and w is not None]
        parts.append(
            f"Closest to converged among the candidates that meet (c): **{closest}**, whose "
            f"least converged method moves by {worst[closest]:.1f} × 2·SE when trained twice as "
            "long"
            + (f" (the others, {min(others):.1f} × or more)" if others else "")
            + ". With no converged candidate, it is the cpu preset, and the benchmark is run at "
            "its length and at twice it: a claim counts only where both lengths agree "
            "(docs/multilabel.md)."
        )
    return "\n\n".join(parts)

"""Words for tables and plots: method, dataset and setting names, row labels, recipe captions.

Display names come from the registries (:data:`longtail.engine.config.METHODS`,
:data:`longtail.engine.regression.REGRESSION_METHODS`, :mod:`longtail.data.registry`); a method
or dataset they do not know is shown by its own name.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from longtail.bench.records import (
    Column,
    Row,
    Setting,
    Table,
    is_method_key,
    thaw,
)
from longtail.data.registry import dataset_label, get_dataset, path_stem
from longtail.engine.config import METHODS
from longtail.engine.regression import REGRESSION_METHODS, RegressionConfig

PROFILE_NAMES = {"exp": "long-tailed", "step": "step"}

METRIC_NAMES = {
    "top1_error": "Top-1 error (%)",
    "balanced_accuracy": "Balanced accuracy (%)",
    "many_acc": "Many-shot accuracy (%)",
    "medium_acc": "Medium-shot accuracy (%)",
    "few_acc": "Few-shot accuracy (%)",
    "ece": "ECE (%)",
}

# How loss settings are written in row labels (the papers' symbols); others keep their names.
PARAM_SYMBOLS = {
    "beta": "β",
    "delta_minus": "δ⁻",
    "delta_plus": "δ⁺",
    "gamma": "γ",
    "tau": "τ",
    "num_groups": "G",
    "lambda1": "λ1",
    "lambda2": "λ2",
}

LEGACY_NOTE = (
    "Recorded without a data fingerprint: these runs are told apart by their saved config alone."
)

_MISSING = object()


def method_label(method: Any) -> str:
    """The registry's display name of ``method``, else the name itself."""
    spec = METHODS.get(method) or REGRESSION_METHODS.get(method)
    return spec.label if spec is not None and spec.label else str(method)


def dataset_stem(dataset: Any) -> str:
    """The dataset as in file names: its name, a file's stem (``/data/faces.npz``: faces) or a
    folder's name (``data/pets/``: pets)."""
    return path_stem(str(dataset))


def setting_title(setting: Setting) -> str:
    dataset, profile, ratio = setting
    if profile == "natural":  # the data's own imbalance: no ratio was chosen
        return f"{dataset_label(str(dataset))} natural"
    return f"{dataset_label(str(dataset))} {PROFILE_NAMES.get(profile, profile)} {ratio}"


def slug(setting: Setting) -> str:
    """File-name form of a setting: ``fashion-mnist_exp100``."""
    dataset, profile, ratio = setting
    name = "natural" if profile == "natural" else f"{profile}{ratio}"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{dataset_stem(dataset)}_{name}")


def column_titles(columns: Sequence[Column], title: Any = setting_title) -> list[str]:
    """Titles of ``columns``; two columns of one setting on other data show the fingerprints."""
    plain = [title(c.setting) for c in columns]
    return [
        f"{t} (data {str(c.data)[:8]})" if plain.count(t) > 1 else t
        for t, c in zip(plain, columns, strict=True)
    ]


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# ---- rows -------------------------------------------------------------------------------------
def _reference(method: Any) -> dict[str, Any] | None:
    """The registry's settings of ``method`` (its row needs no parameters), ``None`` if unknown."""
    if method in METHODS:
        spec = METHODS[method]
        return {
            "loss": spec.loss,
            "normed": spec.normed,
            "reweight": spec.reweight,
            "resample": spec.resample,
            **spec.loss_kwargs,
        }
    if method in REGRESSION_METHODS:
        spec = REGRESSION_METHODS[method]
        defaults = {
            f.name: f.default
            for f in dataclasses.fields(RegressionConfig)
            if is_method_key(f.name) and f.default is not dataclasses.MISSING
        }
        return {**defaults, "loss": spec.loss, "lds": spec.lds, "fds": spec.fds}
    return None


def _shown_params(row: Row, varying: set[str]) -> dict[str, Any]:
    """The settings that tell ``row`` apart: those off the registry's, and ``varying``."""
    variant = thaw(row.variant)
    kwargs = variant.pop("loss_kwargs", {})
    kwargs = kwargs if isinstance(kwargs, dict) else {"loss_kwargs": kwargs}
    ref = _reference(row.method)
    shown = {}
    for key, value in [*variant.items(), *kwargs.items()]:
        if key in shown:
            continue
        if key in varying:
            shown[key] = value
        elif ref is not None and ref.get(key, _MISSING) != value:
            shown[key] = value
        elif ref is None and key in kwargs:  # an unknown method: its loss settings
            shown[key] = value
    return shown


def row_labels(rows: Sequence[Row]) -> dict[Row, str]:
    """Labels of the rows of one table: the method's label, with the loss settings that differ
    from the registry's or between rows of one method, e.g. ``"MM-DRW (β=1.2, δ⁻=0.6)"``."""
    by_method: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_method.setdefault(row.method, []).append(row.params)
    labels = {}
    for row in rows:
        params = by_method[row.method]
        keys = {k for p in params for k in p}
        varying = {k for k in keys if len({repr(p.get(k, _MISSING)) for p in params}) > 1}
        shown = _shown_params(row, varying)
        text = ", ".join(f"{PARAM_SYMBOLS.get(k, k)}={format_value(v)}" for k, v in shown.items())
        labels[row] = method_label(row.method) + (f" ({text})" if text else "")
    return labels


# ---- captions ---------------------------------------------------------------------------------
def plural(n: Any, noun: str, nouns: str | None = None) -> str:
    """``n`` and the noun it counts, singular for one: ``"1 epoch"``, ``"8 epochs"``.

    Example:
        >>> plural(1, "epoch"), plural(8, "epoch"), plural(2, "copy", "copies")
        ('1 epoch', '8 epochs', '2 copies')
    """
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"


def seed_span(counts: Iterable[int]) -> str:
    """``"3 seeds"``, ``"1 seed"`` or ``"2–3 seeds"`` for the numbers of runs behind the cells."""
    ns = sorted(set(counts))
    if not ns:
        return "no seeds"
    if len(ns) == 1:
        return plural(ns[0], "seed")
    return f"{ns[0]}–{ns[-1]} seeds"


def seeds_text(counts: Iterable[int]) -> str:
    counts = list(counts)
    if set(counts) == {1}:
        return "1 seed (no ± shown)"
    fewer = (
        "; a cell of fewer seeds says how many, as (n), and is not set in bold"
        if len(set(counts)) > 1
        else ""
    )
    return f"mean ± sample std over {seed_span(counts)}{fewer}"


def shots_text(recipe: dict[str, Any], unit: str) -> str:
    """The shot-group thresholds of a recipe (default 100 / 20), as words."""
    many = recipe.get("many_threshold", 100)
    few = recipe.get("few_threshold", 20)
    return f"many: > {many} training examples{unit}, few: < {few}"


def _n_max_text(n_max: Any, datasets: Iterable[Any]) -> str:
    """The head-class size of a recipe: its own, or (``None``) each dataset's registry default."""
    if n_max is not None:
        return f"n_max {format_value(n_max)}"
    defaults = {}
    for d in datasets:
        try:
            defaults[dataset_label(str(d))] = get_dataset(str(d)).n_max
        except ValueError:  # a file: every example of its head class
            defaults[dataset_stem(d)] = None
    values = set(defaults.values())
    if len(values) == 1:
        value = values.pop()
        return f"n_max {value} (the dataset's default)" if value else "n_max: the whole head class"
    each = ", ".join(f"{name} {n or 'all'}" for name, n in defaults.items())
    return f"n_max: each dataset's default ({each})"


def _model_text(recipe: dict[str, Any]) -> str | None:
    if recipe.get("backbone") == "mlp" and isinstance(recipe.get("hidden"), list):
        return "MLP " + "-".join(str(h) for h in recipe["hidden"])
    if "model" in recipe:
        width = f" of width {recipe['width']}" if "width" in recipe else ""
        return f"{recipe['model']}{width}"
    return None


# Recipe keys every caption states when the records have them.
ABSENT_TEXT = {"world_size": "world_size 1"}
"""Recipe keys a run's identity leaves out at their usual value (one process adds no
``world_size``), as said where other runs have them."""


def varying_parts(table: Table, varying: Iterable[str]) -> list[tuple[str, str | None]]:
    """``(key, text)`` for the ``varying`` keys that ``table`` sets apart: its value (``text``
    ``None``: the caller formats it), or :data:`ABSENT_TEXT` where its identity leaves the key
    out."""
    return [
        (k, None if k in table.recipe else ABSENT_TEXT[k])
        for k in varying
        if k in table.recipe or k in ABSENT_TEXT
    ]


def varying_tags(table: Table, varying: Iterable[str]) -> list[str]:
    """``"key value"`` for each of the ``varying`` keys that ``table`` sets apart, as a plot's
    line labels say it (:func:`varying_parts`)."""
    return [
        text or f"{k} {format_value(table.recipe[k])}" for k, text in varying_parts(table, varying)
    ]


_STATED = ("preset", "epochs", "n_max", "backbone", "hidden", "model", "width")


def varying_keys(tables: Sequence[Table]) -> list[str]:
    """Recipe keys whose values differ between ``tables`` (stated in each caption)."""
    keys = sorted({k for t in tables for k in t.recipe})
    return [k for k in keys if len({repr(t.recipe.get(k, _MISSING)) for t in tables}) > 1]


def _varying_text(key: str, value: Any, table: Table) -> str:
    """A recipe key that differs between tables; ``None`` is the default, said as such (for a
    regression's ``bins``, with the width the runs chose)."""
    if value is not None:
        return f"{key} {format_value(value)}"
    if key == "bins":
        widths = sorted({rec.get("bin_width") for rec in table.records} - {None})
        if widths:
            return f"bins: automatic ({'/'.join(format_value(w) for w in widths)} wide)"
    return f"{key}: the default"


def recipe_text(table: Table, varying: Iterable[str] = ()) -> str:
    """``"Recipe: preset quick, 8 epochs, n_max 6000 (...), resnet20 of width 8."``, with the
    ``varying`` keys too and, for legacy records, :data:`LEGACY_NOTE`."""
    r = table.recipe
    presets = sorted({str((rec.get("config") or {}).get("preset")) for rec in table.records})
    parts = []
    if "preset" in r or presets != ["None"]:
        parts.append(f"preset {r['preset'] if 'preset' in r else '/'.join(presets)}")
    if "epochs" in r:
        parts.append(plural(r["epochs"], "epoch"))
    if "n_max" in r:
        # the head size each run really used (record["data"]["n_max"]): the default depends on
        # the data at hand (e.g. 5500 with 500 per class held out), not only on the registry
        # a natural-profile run keeps every example (its n_max is None by design)
        natural = any(rec.get("profile") == "natural" for rec in table.records)
        used = {
            (rec.get("data") or {}).get("n_max")
            for rec in table.records
            if rec.get("profile") != "natural"
        }
        if r["n_max"] is None and None not in used and used:
            kept = "; the natural profile keeps every example" if natural else ""
            parts.append(
                f"n_max {format_value(used.pop())} (the default for this data{kept})"
                if len(used) == 1
                else f"n_max: the default for each data set ({', '.join(map(str, sorted(used)))}"
                f"{kept})"
            )
        elif r["n_max"] is None and natural and not used:
            parts.append("n_max: none (the natural profile keeps every example)")
        else:
            parts.append(
                _n_max_text(r["n_max"], sorted({c.setting[0] for c in table.columns}, key=str))
            )
    model = _model_text(r)
    if model:
        parts.append(model)
    parts += [
        text or _varying_text(k, r[k], table)
        for k, text in varying_parts(table, varying)
        if k not in _STATED
    ]
    text = f"Recipe: {', '.join(parts)}." if parts else ""
    if not table.fingerprinted:
        text = f"{text} {LEGACY_NOTE}".strip()
    return text

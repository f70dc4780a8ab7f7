"""Named validation helpers shared by the whole package.

Every check raises ``ValueError`` with one message template::

    Expected `<name>` to be <what was expected>, but got <what was given>.

User input is never checked with ``assert`` (it vanishes under ``python -O``).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

REDUCTIONS = ("mean", "sum", "none")


#: The most characters of ``got`` an error message shows: a list of 4,000 counts is cut, the
#: explanations some messages carry there (a few hundred characters) are not.
GOT_LIMIT = 1000


def expected(name: str, what: str, got: Any) -> ValueError:
    """Build the package's one error message: ``Expected `name` to be what, but got got.``

    A long ``got`` (say the counts of 4,000 classes) is cut to its first and last characters,
    saying how long it was, so the message stays readable.
    """
    text = str(got)
    if len(text) > GOT_LIMIT:
        head, tail = text[: GOT_LIMIT - 200], text[-150:]
        text = f"{head} ... {tail} ({len(text):,} characters in all)"
    return ValueError(f"Expected `{name}` to be {what}, but got {text}.")


#: How to renumber labels used as class indices ({3, 7, 42} leaves 0..41 empty), for messages.
RENUMBER = "renumber them first, e.g. numpy.unique(labels, return_inverse=True)[1]"


def first_few(values: Sequence[Any], limit: int = 10) -> str:
    """``values`` for a message: the first ``limit`` as a list, `` ...`` after it when there
    are more (``[0, 1, 2] ...``)."""
    return f"{list(values[:limit])}{' ...' if len(values) > limit else ''}"


def close_names(word: Any, known: Iterable[Any], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The entries of ``known`` close to ``word``, case aside: those equal to it but for case
    first ("LDAM" for "ldam"), then difflib's closest (compared in lower case); at most ``n``,
    never ``word`` itself."""
    lower: dict[str, list[str]] = {}
    for k in known:
        lower.setdefault(str(k).lower(), []).append(str(k))
    word = str(word)
    w = word.lower()
    near = [
        k for c in difflib.get_close_matches(w, list(lower), n=n, cutoff=cutoff) for k in lower[c]
    ]
    return [k for k in dict.fromkeys(lower.get(w, []) + near) if k != word][:n]


def did_you_mean(word: Any, known: Iterable[str], n: int = 3) -> str:
    """A hint naming the entries of ``known`` close to ``word`` (``""`` when none is close).

    Case is ignored. A name equal to ``word`` but for case comes first, then names that
    ``word`` begins (a name typed without its suffix, ``cnn5-w32-e20`` for
    ``cnn5-w32-e20-lr0.003``), then difflib's closest (:func:`close_names`).

    Returns:
        ``" Did you mean 'epochs'?"`` (leading space included), ready to append to a message.
    """
    known, word = list(known), str(word)
    names = close_names(word, known, n)
    w = word.lower()
    same = [k for k in names if k.lower() == w]
    begun = [k for k in known if w and k.lower().startswith(w) and k.lower() != w]
    close = list(dict.fromkeys(same + begun + names))[:n]
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def lookup(registry: Mapping[str, Any], name: Any, argument: str, context: str = "") -> Any:
    """``registry[name]``, or a ``ValueError`` listing the names and the close ones.

    Example:
        >>> lookup({"erm": 1, "ldam": 2}, "ldam", "method")
        2
        >>> try:
        ...     lookup({"erm": 1, "ldam": 2}, "ladm", "method")
        ... except ValueError as e:
        ...     print(str(e).split(". ")[-1])
        Did you mean 'ldam'?
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        close = close_names(name, registry, cutoff=0.5)  # "ERM" for "erm", then difflib's
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"Expected argument `{argument}` to be one of {', '.join(registry)}{context}, but "
            f"got {name!r}.{hint}"
        ) from None


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise expected(name, f"one of {tuple(choices)}", repr(value))


def check_reduction(reduction: str) -> None:
    check_choice("reduction", reduction, REDUCTIONS)


def is_number(value: Any) -> bool:
    """Whether ``value`` is a real number: an int or float (numpy's too), but not a bool.

    ``True`` is an ``int`` to Python, but ``max_margin=true`` in a config file is a mistake,
    not a margin of 1.
    """
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


def _check_number(name: str, value: Any) -> None:
    # the type first: comparing a string with a bound raises a TypeError that names no argument
    if not is_number(value):
        raise expected(name, "a number", f"{value!r} (a {type(value).__name__})")


def check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    _check_number(name, value)
    ok = value >= 0 if allow_zero else value > 0
    if not (np.isfinite(value) and ok):
        what = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise expected(name, what, repr(value))


# The largest seed a run takes: numpy's and most tools' seed range (0..2**32-1). The engine
# derives per-epoch seeds as ``seed * 1_000_003 + epoch``, which a larger seed overflows.
MAX_SEED = 2**32 - 1


def is_seed(value: Any) -> bool:
    """An integer in ``0..MAX_SEED`` (not a bool)."""
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= MAX_SEED


def check_seed(name: str, value: Any) -> None:
    if not is_seed(value):
        raise expected(name, f"an integer in 0..{MAX_SEED} (2**32 - 1)", repr(value))


def check_finite_number(name: str, value: float) -> None:
    _check_number(name, value)
    if not np.isfinite(value):
        raise expected(name, "a finite number", repr(value))


def check_in_range(name: str, value: float, low: float, high: float) -> None:
    _check_number(name, value)
    if not low <= value <= high:
        raise expected(name, f"a number in [{low}, {high}]", repr(value))


def as_counts(
    counts: Any,
    *,
    name: str = "class_counts",
    num_classes: int | None = None,
    allow_zero: bool = True,
) -> torch.Tensor:
    """Return per-class training counts as a 1-D float64 CPU tensor, checked.

    Counts must be one-dimensional, finite and non-negative; ``allow_zero=False`` also rejects
    zeros (for quantities such as ``log n_c`` or ``n_c ** -0.25`` that a zero count makes
    infinite). ``num_classes`` checks the length.
    """
    if isinstance(counts, torch.Tensor):
        t = counts.detach().to(device="cpu", dtype=torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(counts, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise expected(name, "a 1-D sequence of per-class counts", repr(counts)) from err
    if t.dim() != 1 or t.numel() == 0:
        raise expected(
            name, "a non-empty 1-D sequence of per-class counts", f"shape {tuple(t.shape)}"
        )
    if num_classes is not None and t.numel() != num_classes:
        raise expected(
            name, f"of length {num_classes} (the number of classes)", f"length {t.numel()}"
        )
    if not torch.isfinite(t).all():
        raise expected(name, "finite", t.tolist())
    if (t < 0).any():
        raise expected(name, "non-negative", t.tolist())
    if not allow_zero and (t == 0).any():
        zeros = torch.nonzero(t == 0).flatten().tolist()
        got = f"zero counts for {len(zeros)} of {t.numel()} classes: {first_few(zeros)}"
        if 2 * len(zeros) > t.numel():  # mostly empty: labels used as indices ({3, 7, 4000})
            seen = torch.nonzero(t).flatten().tolist()
            got += (
                f" (counts are per class index 0..C-1, and only {first_few(seen)} have examples: "
                f"if those are labels, {RENUMBER})"
            )
        raise expected(
            name, "positive for every class (a zero count makes this quantity infinite)", got
        )
    return t


def check_class_vector(name: str, value: torch.Tensor | None, num_classes: int) -> None:
    """A per-class vector (weight, alpha, ...) must be 1-D of length C and finite."""
    if value is None:
        return
    if not isinstance(value, torch.Tensor):  # as in torch.nn.functional (the modules take lists)
        raise expected(
            name,
            f"a 1-D tensor of length {num_classes} (one value per class; torch.as_tensor it)",
            type(value).__name__,
        )
    if value.dim() != 1 or value.numel() != num_classes:
        raise expected(
            name,
            f"a 1-D tensor of length {num_classes} (one value per class)",
            f"shape {tuple(value.shape)}",
        )
    if not torch.isfinite(value).all():
        raise expected(name, "finite", value.tolist())


def check_counts_length(values: torch.Tensor, num_classes: int) -> None:
    """A per-class quantity derived from ``class_counts`` must have one value per class."""
    if values.numel() != num_classes:
        raise expected(
            "class_counts",
            f"of length {num_classes} (the number of classes)",
            f"length {values.numel()}",
        )


_SCALARS = {
    "bool": "true or false (a boolean)",
    "int": "an integer",
    "float": "a number",
    "str": "a string",
}


def check_field_types(obj: Any) -> None:
    """Check each field of dataclass ``obj`` against its scalar annotation (``bool``, ``int``,
    ``float``, ``str``, optionally ``| None``); other annotations are left to the class.

    A config file's ``augment = "false"`` is a truthy string that would silently keep
    augmentation on, and ``lr = "0.1"`` would fail deep inside a comparison: both are refused
    here, naming the field. Bools are not numbers; ints are accepted for floats.
    """
    import dataclasses

    for f in dataclasses.fields(obj):
        ann = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
        parts = [p.strip() for p in ann.split("|")]
        optional = "None" in parts
        kinds = [p for p in parts if p != "None"]
        if len(kinds) != 1 or kinds[0] not in _SCALARS:
            continue
        kind, v = kinds[0], getattr(obj, f.name)
        if v is None and optional:
            continue
        ok = {
            "bool": isinstance(v, bool),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, int | float) and not isinstance(v, bool),
            "str": isinstance(v, str),
        }[kind]
        if not ok:
            what = _SCALARS[kind] + (" or None" if optional else "")
            raise expected(f.name, what, f"{v!r} ({type(v).__name__})")

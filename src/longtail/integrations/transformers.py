"""Train Hugging Face models with longtail's losses, deferred re-weighting and balanced samplers.

``pip install longtail[transformers]``; importing :mod:`longtail` never imports this module (nor
``transformers``). Three pieces, described with a runnable example in ``docs/transformers.md``:

* :class:`LongtailTrainer` -- a ``transformers.Trainer`` whose loss is any single-label loss of
  the registry (``loss="ldam"``, see ``longtail losses``), built with the training class counts,
  whose training sampler can be :class:`~longtail.weighting.ClassBalancedSampler` (CB-RS) or
  :class:`~longtail.weighting.DeferredResampler` (DRS, Cao et al., NeurIPS 2019), and which
  applies deferred re-weighting (DRW, Cao et al. 2019) when given ``drw=``.
* :class:`DeferredReweightingCallback` -- sets the loss's per-class weights at the start of every
  epoch from a :class:`~longtail.weighting.DeferredReweighting` schedule (``None`` before its
  start epoch, the effective-number weights of Cui et al., CVPR 2019 from then on), as the
  library's own engine does (``src/longtail/engine/train.py``).
* :class:`SamplerEpochCallback` -- calls ``sampler.set_epoch(epoch)`` at the start of every
  epoch, so each epoch draws a new, seeded sequence (a resumed run draws what an unbroken one
  would).

The loss is the weighted mean of the loss module, ``Σ_i w_{y_i} ℓ_i / Σ_i w_{y_i}`` (torch's
convention; ``w = 1`` without weights), taken over the *whole* optimiser step: with gradient
accumulation over ``k`` micro-batches and data-parallel processes, the gradient equals that of
one batch holding all of them, as :meth:`LongtailTrainer.get_batch_samples` sums the weights of
the accumulated (and gathered) labels and :meth:`LongtailTrainer.compute_loss` divides by it.
"""

from __future__ import annotations

import inspect
import math
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

try:
    from transformers import Trainer, TrainerCallback
except ImportError as err:  # pragma: no cover - the extra is installed in CI
    raise ImportError(
        "longtail.integrations.transformers needs the Hugging Face `transformers` and "
        "`accelerate` packages: pip install 'longtail[transformers]'"
    ) from err

from longtail._labels import as_labels, label_counts
from longtail._validation import check_choice, did_you_mean, expected
from longtail.integrations._drw import drw_schedule
from longtail.losses import create_loss_for_counts, get_loss_info, list_losses
from longtail.weighting import ClassBalancedSampler, DeferredResampler, DeferredReweighting

__all__ = [
    "SAMPLERS",
    "DeferredReweightingCallback",
    "LongtailTrainer",
    "SamplerEpochCallback",
    "dataset_labels",
]

#: Names the ``sampler`` argument of :class:`LongtailTrainer` takes.
SAMPLERS = ("class-balanced", "drs")

# state.epoch is `epoch + (step + 1) / steps_in_epoch`: exactly e at the start of epoch e, but a
# resumed run's float may sit a rounding error below it.
_EPOCH_TOLERANCE = 1e-6


def _epoch_index(state: Any) -> int:
    """The 0-based index of the epoch that is starting, from a ``TrainerState``."""
    epoch = getattr(state, "epoch", None) or 0.0
    return math.floor(epoch + _EPOCH_TOLERANCE)


def _is_sequence(value: Any) -> bool:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return value.ndim >= 1
    return isinstance(value, (list, tuple))


def _per_token(values: Any) -> bool:
    """Whether label values hold a sequence per example (token classification)."""
    if isinstance(values, torch.Tensor):
        return values.dim() > 1
    return _is_sequence(next(iter(values), None))


def _token_labels(values: Sequence[Any], name: str, ignore_index: int) -> np.ndarray:
    """The labels of every token of per-token examples, without the ``ignore_index`` ones."""
    flat: list[int] = []
    for value in values:
        arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise expected(name, "integer class labels per token", f"dtype {arr.dtype}")
        flat.extend(arr[arr != ignore_index].reshape(-1).tolist())
    if not flat:
        raise expected(name, f"tokens with a label other than {ignore_index}", "none")
    return as_labels(flat, name=f"{name} (tokens not {ignore_index})")


def _label_values(dataset: Any, label_key: str) -> tuple[Sequence[Any], str, str]:
    """The label field of every example, as found (a class, or a sequence of them per token),
    with the name errors give it and the field it was read from."""
    keys = tuple(dict.fromkeys((label_key, "label")))
    if hasattr(dataset, "targets"):
        return dataset.targets, "train_dataset.targets", label_key
    columns = getattr(dataset, "column_names", None)
    if columns is not None:
        for key in keys:
            if key in columns:
                return list(dataset[key]), f"column {key!r}", key
        raise expected("train_dataset", f"a column named one of {keys}", f"columns {columns}")
    try:
        n = len(dataset)
    except TypeError:
        raise expected(
            "train_dataset", "a map-style dataset with a length (or pass class_counts)", dataset
        ) from None
    labels, found = [], label_key
    for i in range(n):
        item = dataset[i]
        key = next((k for k in keys if isinstance(item, Mapping) and k in item), None)
        if key is None:
            got = f"{type(item).__name__} {list(item) if isinstance(item, Mapping) else ''}"
            raise expected(
                "train_dataset", f"examples that are dicts with a {label_key!r} field", got
            )
        label, found = item[key], key
        if isinstance(label, torch.Tensor) and label.dim() == 0:
            label = label.item()
        labels.append(label)
    return labels, "train_dataset labels", found


def dataset_labels(
    dataset: Any, label_key: str = "labels", *, tokens: bool = False, ignore_index: int = -100
) -> np.ndarray:
    """The class label of every example of a training set, as a checked ``int64`` array.

    Looked up, in this order, as: a ``.targets`` attribute (torchvision-style datasets,
    :func:`longtail.imbalanced_subset`); a column ``label_key`` or ``"label"`` of a Hugging Face
    ``datasets.Dataset`` (anything with ``column_names``); ``dataset[i][label_key]`` (or
    ``["label"]``) of every example of a map-style dataset of dicts.

    Args:
        dataset: The training set.
        label_key: Name of the label field. Default ``"labels"`` (the Trainer's).
        tokens: Accept per-token labels (token classification: a sequence of labels per
            example, of any lengths) and return the label of every token whose label is not
            ``ignore_index``, in order: what the class counts are counted over. Default
            ``False``: one label per example is expected, and per-token labels are refused.
        ignore_index: The per-token label that counts for nothing (special tokens, padding).

    Raises:
        ValueError: When no labels are found, or they are not non-negative integers, or they
            are per-token labels and ``tokens`` is false.
    """
    values, name, _ = _label_values(dataset, label_key)
    return _checked_labels(values, name, tokens=tokens, ignore_index=ignore_index)


def _checked_labels(
    values: Sequence[Any], name: str, *, tokens: bool, ignore_index: int
) -> np.ndarray:
    """:func:`dataset_labels` of label values already read."""
    per_token = _per_token(values)
    if per_token and isinstance(values, torch.Tensor):
        values = list(values)
    if per_token and tokens:
        return _token_labels(values, name, ignore_index)
    if per_token:
        raise expected(
            name,
            "one class label per example",
            "per-token labels (a sequence per example, as in token classification)",
        )
    return as_labels(values if isinstance(values, torch.Tensor) else np.asarray(values), name=name)


def _ignore_index_of(loss: Any, loss_kwargs: Mapping[str, Any] | None) -> int:
    """The label a loss ignores (what per-token labels are counted without): -100 by default."""
    if isinstance(loss, nn.Module):
        value = getattr(loss, "ignore_index", -100)
    else:
        value = dict(loss_kwargs or {}).get("ignore_index", -100)
    return value if isinstance(value, int) and not isinstance(value, bool) else -100


def _logits(outputs: Any) -> torch.Tensor:
    """The logits of a model's output: ``.logits``, ``["logits"]`` or the first element."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    if isinstance(outputs, Mapping):
        if "logits" in outputs:
            return outputs["logits"]
        raise expected("model outputs", "a mapping with a 'logits' entry", f"keys {list(outputs)}")
    logits = getattr(outputs, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    if isinstance(outputs, (tuple, list)) and outputs and isinstance(outputs[0], torch.Tensor):
        return outputs[0]
    raise expected("model outputs", "logits (a tensor, or an output with .logits)", type(outputs))


def _label_mapping(found: Sequence[int]) -> str:
    """``{3: 0, 7: 1, 42: 2}``: the labels found mapped to ``0..k-1`` (elided past 8 labels)."""
    pairs = [f"{label}: {i}" for i, label in enumerate(found)]
    if len(pairs) > 8:
        pairs = [*pairs[:3], "...", pairs[-1]]
    return "{" + ", ".join(pairs) + "}"


def _labels_error(
    found: Sequence[int],
    num_outputs: int | None,
    source: str,
    what: str = "training labels",
    *,
    key: str = "labels",
    per_token: bool = False,
) -> ValueError:
    """The error for labels that are not the class indices ``0..C-1`` of the model's outputs.

    Args:
        found: The distinct labels found, sorted.
        num_outputs: The model's number of outputs ``C``, or ``None`` when unknown.
        source: Where ``C`` comes from (``"model.config.num_labels=3"``), or why it is unknown.
        what: Whose labels ``found`` are.
        key: The label column, for the ``dataset.map`` hint.
        per_token: Whether the labels are per token (the hint maps every token's label and
            keeps the ignored ones).
    """
    shown = "{" + ", ".join(map(str, found[:12])) + (", ..." if len(found) > 12 else "") + "}"
    k = len(found)
    if num_outputs is None:
        head = (
            f"Expected the {what} to be the class indices 0..C-1 of the model's C "
            f"outputs, but got the labels {shown}, which leave {found[-1] + 1 - k} of the classes "
            f"0..{found[-1]} without examples ({source})."
        )
        other = (
            f" If the model does have {found[-1] + 1} outputs, pass num_labels={found[-1] + 1} "
            "(or class_counts=) to LongtailTrainer."
        )
    else:
        head = (
            f"Expected the {what} to be the class indices 0..{num_outputs - 1} of the "
            f"model's {num_outputs} outputs ({source}), but got the labels {shown}."
        )
        other = (
            f" The labels name {k} classes: give the model {k} outputs (num_labels={k})."
            if k > num_outputs
            else ""
        )
    value = f"[mapping.get(t, t) for t in ex[{key!r}]]" if per_token else f"mapping[ex[{key!r}]]"
    if list(found) == list(range(k)):  # already 0..k-1: too many classes for the model
        return ValueError(f"{head}{other} LongtailTrainer does not renumber labels.")
    return ValueError(
        f"{head} LongtailTrainer does not renumber labels (the model's outputs are fixed): map "
        f"them to 0..{k - 1} before training, e.g. with the mapping {_label_mapping(found)} "
        "(mapping = {label: i for i, label in enumerate(sorted(set(labels)))}; for a "
        f"datasets.Dataset, dataset.map(lambda ex: {{{key!r}: {value}}}))." + other
    )


def _never_starts(start_epoch: int, epochs: int, how: str) -> str:
    """The warning for a DRW schedule that starts after the last epoch of training."""
    return (
        f"Deferred re-weighting starts at epoch {start_epoch} (0-based), but training runs "
        f"{epochs} epoch{'s' if epochs != 1 else ''} ({how}): the loss stays unweighted for the "
        "whole run. Lower the start epoch or train for more epochs (a run resumed and extended "
        "later does reach it)."
    )


class DeferredReweightingCallback(TrainerCallback):
    """Deferred re-weighting (DRW) for a ``transformers.Trainer``: set the loss's per-class
    weights at the start of every epoch.

    At epoch ``e`` (0-based, read from ``state.epoch``) the loss gets ``None`` (unweighted) while
    ``schedule.is_active(e)`` is false, then ``schedule.weights(e)``: the effective-number
    weights ``(1 - β) / (1 - β^{n_c})`` normalised to sum to ``C`` by default (Cao et al.,
    NeurIPS 2019; Cui et al., CVPR 2019), exactly as ``longtail train`` applies DRW
    (``src/longtail/engine/train.py``). It depends on the epoch only, so a resumed run gets the
    weights an unbroken one would.

    :class:`LongtailTrainer` adds one itself when given ``drw=``, and binds its loss to any
    instance in ``callbacks=`` built without ``loss``.

    At the start of training it warns (``UserWarning``) when ``start_epoch`` is not below the
    number of training epochs (``args.num_train_epochs``, or the epochs ``args.max_steps``
    spans): the loss would stay unweighted. A warning, not an error: a run resumed with more
    epochs does reach it.

    Args:
        counts_or_schedule: Per-class training counts, or a ready
            :class:`~longtail.weighting.DeferredReweighting` (then leave the next three unset).
            The same arguments as ``longtail.integrations.lightning.DeferredReweightingCallback``.
        start_epoch: First 0-based epoch with class-balanced weights. Default 160 (the paper's,
            of 200 CIFAR epochs).
        beta: ``β`` of the effective-number scheme. Default 0.9999.
        scheme: Any name of :data:`longtail.weighting.WEIGHT_SCHEMES`. Default ``"effective"``.
        loss: The loss module to re-weight: anything with ``set_weight(weight)``, such as every
            longtail loss. Default: bound by :class:`LongtailTrainer`.

    Example:
        >>> cb = DeferredReweightingCallback([900, 90, 10], start_epoch=3)
        >>> cb.schedule.is_active(2), cb.schedule.is_active(3)
        (False, True)
    """

    def __init__(
        self,
        counts_or_schedule: Any,
        start_epoch: int | None = None,
        beta: float | None = None,
        scheme: str | None = None,
        *,
        loss: nn.Module | None = None,
    ) -> None:
        self.schedule = drw_schedule(counts_or_schedule, start_epoch, beta, scheme)
        if loss is not None:
            _check_reweightable(loss)
        self.loss = loss
        #: The epoch whose weights were last applied (``None`` before training).
        self.epoch: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.schedule!r})"

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Warn (``UserWarning``) when the schedule starts after the last epoch of training."""
        epochs = int(getattr(state, "num_train_epochs", 0) or 0)
        if not 0 < epochs < sys.maxsize or self.schedule.start_epoch < epochs:
            return  # unknown length (an iterable dataset), or it does start
        if not getattr(state, "is_world_process_zero", True):
            return
        max_steps = getattr(args, "max_steps", -1) or -1
        how = (
            f"args.max_steps={max_steps}"
            if max_steps > 0
            else f"args.num_train_epochs={getattr(args, 'num_train_epochs', epochs)}"
        )
        warnings.warn(
            _never_starts(self.schedule.start_epoch, epochs, how), UserWarning, stacklevel=2
        )

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.loss is None:
            raise RuntimeError(
                "DeferredReweightingCallback has no loss to re-weight: pass loss= or add it to "
                "a LongtailTrainer, which binds its own loss"
            )
        epoch = _epoch_index(state)
        active = self.schedule.is_active(epoch)
        self.loss.set_weight(self.schedule.weights(epoch) if active else None)
        self.epoch = epoch


def _check_reweightable(loss: Any) -> None:
    if not callable(getattr(loss, "set_weight", None)):
        raise expected("loss", "a loss module with set_weight (any longtail loss)", type(loss))


class SamplerEpochCallback(TrainerCallback):
    """Call ``sampler.set_epoch(epoch)`` at the start of every epoch (0-based, from
    ``state.epoch``).

    The samplers of :mod:`longtail.weighting` draw each epoch from a generator seeded with
    ``seed + epoch``, and :class:`~longtail.weighting.DeferredResampler` switches from shuffling
    to class-balanced draws at its ``start_epoch``: without ``set_epoch`` every epoch would repeat
    epoch 0. ``transformers.Trainer`` forwards its own ``set_epoch`` to the sampler of an
    ``accelerate`` data loader as well; this callback makes it independent of how the loader is
    wrapped (both set the same epoch). :class:`LongtailTrainer` adds one for its sampler.

    Args:
        sampler: Any sampler with ``set_epoch(epoch)``.
    """

    def __init__(self, sampler: Any) -> None:
        if not callable(getattr(sampler, "set_epoch", None)):
            raise expected("sampler", "a sampler with set_epoch(epoch)", type(sampler))
        self.sampler = sampler

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Warn (``UserWarning``) when a deferred re-sampler starts after the last epoch."""
        epochs = int(getattr(state, "num_train_epochs", 0) or 0)
        start = getattr(self.sampler, "start_epoch", None)
        if not isinstance(self.sampler, DeferredResampler) or start is None:
            return
        if not 0 < epochs < sys.maxsize or start < epochs:
            return
        if getattr(state, "is_world_process_zero", True):
            warnings.warn(
                f"Deferred re-sampling starts at epoch {start} (0-based), but training runs "
                f"{epochs} epoch{'s' if epochs != 1 else ''}: every epoch is drawn uniformly. "
                "Lower start_epoch or train for more epochs.",
                UserWarning,
                stacklevel=2,
            )

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.sampler.set_epoch(_epoch_index(state))


class LongtailTrainer(Trainer):
    """A ``transformers.Trainer`` that trains with a longtail loss, DRW and balanced samplers.

    Everything else -- the model, ``TrainingArguments``, data collator, optimiser, evaluation,
    checkpoints -- is the ``Trainer``'s. Labels (``inputs["labels"]``, or the one name in
    ``args.label_names``) are taken out of the batch, so the model computes no loss of its own;
    the loss is ``criterion(logits, labels)`` on the model's ``logits`` (``(N, C)``, or the
    ``(N, ..., C)`` of token classification), averaged as described in the module docstring.

    Args:
        *args: The ``Trainer``'s positional arguments (``model``, ``args``, ...).
        loss: A registered loss name (``longtail losses``; single-label losses only: family
            ``multilabel``, soft-target, regression and batch-level losses are refused) or a
            ready longtail loss module (its ``reduction`` is set to ``"none"``). Default ``"ce"``.
        loss_kwargs: Keyword arguments of the loss (``{"max_margin": 0.5, "scale": 30.0}``);
            a misspelled one raises a ``ValueError`` listing those it takes.
        class_counts: Per-class training counts, for the losses that use them and for ``drw``,
            one per model output. Default: counted from ``train_dataset`` (see
            :func:`dataset_labels`) over ``num_labels`` classes; for token classification, over
            the tokens whose label is not the loss's ``ignore_index`` (-100).
        num_labels: The model's number of outputs (classes) ``C``. Default
            ``model.config.num_labels`` where the model has a config; else unknown until the
            first batch, and the classes are counted up to the largest label. Labels must be
            the class indices ``0..C-1``: they are not renumbered.
        drw: Deferred re-weighting: the (0-based) epoch from which the loss is weighted with the
            effective-number weights (``β = 0.9999``), or a ready
            :class:`~longtail.weighting.DeferredReweighting`. Default ``None``: no re-weighting.
        sampler: ``"class-balanced"`` (a :class:`~longtail.weighting.ClassBalancedSampler`:
            every class equally likely by default), ``"drs"`` (a
            :class:`~longtail.weighting.DeferredResampler`), a ready sampler of the whole
            training set, or ``None`` for the ``Trainer``'s own shuffling. Under data
            parallelism every process iterates the same global sequence and ``accelerate``
            shards its batches, so a ready sampler must have ``num_replicas=1``.
        sampler_kwargs: Keyword arguments of the named sampler (``{"start_epoch": 2}`` for
            ``"drs"``, ``{"scheme": "sqrt-inverse", "seed": 1}``, ...).
        **kwargs: The ``Trainer``'s keyword arguments (``train_dataset``, ``callbacks``, ...).

    Attributes:
        criterion: The loss module (reduction ``"none"``).
        reweighting: The :class:`~longtail.weighting.DeferredReweighting` schedule, or ``None``.
        train_sampler: The training sampler, or ``None``.

    Raises:
        ValueError: An unknown loss or sampler name (with close matches), a loss that is not a
            single-label loss, bad loss or sampler arguments, labels or counts that cannot be
            found or are invalid, ``compute_loss_func`` or ``label_smoothing_factor`` given
            (the loss is longtail's: pass ``loss_kwargs={"label_smoothing": ...}`` to ``"ce"``).
            Labels that are not ``0..C-1`` (the error shows a mapping to them), a class without
            training examples where the loss or ``drw`` needs its count, and (in
            :meth:`compute_loss`) counts or labels that do not fit the logits' width.

    Warns:
        UserWarning: At the start of training, when ``drw`` starts after the last epoch.
    """

    # compute_loss divides by the step's Σw, computed over every micro-batch of the step in
    # get_batch_samples: the Trainer must not divide by the accumulation steps again.
    loss_is_scaled_for_ga = True

    def __init__(
        self,
        *args: Any,
        loss: str | nn.Module = "ce",
        loss_kwargs: Mapping[str, Any] | None = None,
        class_counts: Any = None,
        num_labels: int | None = None,
        drw: int | DeferredReweighting | None = None,
        sampler: str | torch.utils.data.Sampler | None = None,
        sampler_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        training_args = kwargs.get("args", args[1] if len(args) > 1 else None)
        smoothing = getattr(training_args, "label_smoothing_factor", 0.0)
        if smoothing:  # before the Trainer builds its own label smoother
            raise expected(
                "args.label_smoothing_factor",
                "0 with LongtailTrainer (pass loss='ce', loss_kwargs={'label_smoothing': ...})",
                smoothing,
            )
        super().__init__(*args, **kwargs)
        if "loss_is_scaled_for_ga" not in vars(Trainer):
            import transformers

            raise ImportError(
                "LongtailTrainer needs transformers >= 5 (Trainer.loss_is_scaled_for_ga), but "
                f"found {transformers.__version__}: pip install 'transformers>=5'"
            )
        if self.compute_loss_func is not None:
            raise expected("compute_loss_func", "None (LongtailTrainer computes the loss)", "one")
        names = self.args.label_names
        if names is not None and len(names) != 1:
            raise expected("args.label_names", "one label name", names)
        self.label_key: str = names[0] if names else "labels"
        self._labels: np.ndarray | None = None
        self._label_source: dict[str, Any] = {}
        self._ignore_index = _ignore_index_of(loss, loss_kwargs)
        self._num_labels, self._num_labels_source = self._model_num_labels(num_labels)
        self._counts_source = "class_counts"
        self._counts = None if class_counts is None else self._check_counts(class_counts)
        self.criterion = self._build_loss(loss, loss_kwargs)
        self.reweighting = self._build_reweighting(drw)
        if self.reweighting is not None:
            self.add_callback(DeferredReweightingCallback(self.reweighting, loss=self.criterion))
        for cb in self.callback_handler.callbacks:
            if isinstance(cb, DeferredReweightingCallback) and cb.loss is None:
                cb.loss = self.criterion
        self.train_sampler = self._build_sampler(sampler, sampler_kwargs)
        if self.train_sampler is not None and hasattr(self.train_sampler, "set_epoch"):
            self.add_callback(SamplerEpochCallback(self.train_sampler))

    # ---- construction ------------------------------------------------------------------------
    def _train_labels(self) -> np.ndarray:
        """The training labels the classes are counted over: one per example, or (token
        classification) one per token whose label is not the loss's ``ignore_index``."""
        if self._labels is None:
            if self.train_dataset is None:
                raise expected(
                    "train_dataset", "given (or pass class_counts) to count the classes", "None"
                )
            values, name, key = _label_values(self.train_dataset, self.label_key)
            self._labels = _checked_labels(
                values, name, tokens=True, ignore_index=self._ignore_index
            )
            # where they were found, for the renumbering hint of an error
            self._label_source = {"key": key, "per_token": _per_token(values)}
        return self._labels

    def _hint(self) -> dict[str, Any]:
        """Where the training labels were found: their field, and whether they are per token
        (read with them by :meth:`_train_labels`)."""
        self._train_labels()
        return self._label_source

    def _example_labels(self, sampler: str) -> np.ndarray:
        """One label per example, for a sampler; per-token labels are refused."""
        try:
            return dataset_labels(self.train_dataset, self.label_key)
        except ValueError as err:
            if "per-token labels" not in str(err):
                raise
            raise expected(
                "sampler",
                "None with per-token labels (a sampler draws whole examples and cannot balance "
                "the classes of their tokens; re-weight instead, with drw= or a loss built from "
                "the class counts, which are counted over the tokens)",
                repr(sampler),
            ) from None

    def _model_num_labels(self, num_labels: Any) -> tuple[int | None, str]:
        """The model's number of outputs and where it comes from (or why it is unknown)."""
        config = getattr(getattr(self.model, "config", None), "num_labels", None)
        if num_labels is not None:
            if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
                raise expected("num_labels", "a positive integer (the model's outputs)", num_labels)
            if config is not None and config != num_labels:
                raise expected(
                    "num_labels", f"model.config.num_labels={config} or unset", num_labels
                )
            return num_labels, f"num_labels={num_labels}"
        if isinstance(config, int) and not isinstance(config, bool):
            return config, f"model.config.num_labels={config}"
        return None, "the model's number of outputs is not known: it has no config.num_labels"

    def _check_counts(self, counts: Any) -> list:
        """``class_counts`` as a list, one count per model output where that number is known."""
        values = counts.tolist() if hasattr(counts, "tolist") else list(counts)
        if self._num_labels is not None and len(values) != self._num_labels:
            raise expected(
                "class_counts",
                f"one count per model output ({self._num_labels_source})",
                f"{len(values)} counts",
            )
        return values

    def class_counts(self) -> list[int]:
        """The per-class training counts: ``class_counts`` as given, else counted from
        ``train_dataset`` over the model's ``num_labels`` classes (where known).

        Raises:
            ValueError: When the labels are not the class indices ``0..C-1``: a label ``>= C``,
                or (``C`` unknown) classes below the largest label without examples.
        """
        if self._counts is None:
            labels = self._train_labels()
            found = np.unique(labels).tolist()
            c = self._num_labels
            if c is not None and found[-1] >= c:
                raise _labels_error(found, c, self._num_labels_source, **self._hint())
            counts = label_counts(labels, c)
            if c is None and (counts == 0).any():
                raise _labels_error(found, None, self._num_labels_source, **self._hint())
            self._counts = counts.tolist()
            self._counts_source = (
                f"the class counts from train_dataset over {self._num_labels_source}"
                if c is not None
                else f"the class counts from train_dataset up to its largest label, {found[-1]}"
            )
        return self._counts

    def _zero_count_error(self, what: str) -> ValueError | None:
        """The error for classes without training examples (``None`` when every class has)."""
        counts = self.class_counts()
        zeros = [c for c, n in enumerate(counts) if n == 0]
        if not zeros:
            return None
        shown = ", ".join(map(str, zeros[:12])) + (", ..." if len(zeros) > 12 else "")
        many = len(zeros) > 1
        classes = (
            f"class{'es' if many else ''} {shown} of the {len(counts)} ha{'ve' if many else 's'}"
        )
        return ValueError(
            f"Expected every class to have training examples, but {classes} none "
            f"({self._counts_source}: {counts}), and {what}. Drop the classes without examples "
            "from the model and number the labels 0..C-1, or pass class_counts= with a positive "
            "count for every class (the counts of the full distribution, for example)."
        )

    def _build_loss(self, loss: Any, loss_kwargs: Mapping[str, Any] | None) -> nn.Module:
        if isinstance(loss, nn.Module):
            if loss_kwargs:
                raise expected("loss_kwargs", "empty when loss is a built module", loss_kwargs)
            registered = [n for n in list_losses() if get_loss_info(n).cls is type(loss)]
            if registered:
                self._check_single_label(registered[0])
            if not hasattr(loss, "reduction"):
                raise expected("loss", "a longtail loss module (with a reduction)", type(loss))
            criterion = loss
        elif isinstance(loss, str):
            self._check_single_label(loss)  # unknown names: a ValueError naming close matches
            kwargs = dict(loss_kwargs or {})
            counts = self.class_counts() if get_loss_info(loss).needs_counts else None
            try:
                criterion = create_loss_for_counts(loss, counts, **kwargs)
            except ValueError as err:
                what = (
                    f"loss {loss!r} is built from the class counts and needs a positive count "
                    "for every class (it takes log n_c or a power of n_c)"
                )
                zero = self._zero_count_error(what) if counts is not None else None
                if zero is not None:
                    raise zero from err
                raise
        else:
            raise expected("loss", "a registered loss name or a longtail loss module", repr(loss))
        criterion.reduction = "none"  # compute_loss weights and averages the per-sample values
        return criterion

    @staticmethod
    def _check_single_label(name: str) -> None:
        info = get_loss_info(name)
        if not info.single_label:
            singles = [n for n in list_losses() if get_loss_info(n).single_label]
            raise expected(
                "loss",
                f"a single-label classification loss (one of {', '.join(singles)})",
                f"{name!r}, a {info.family} loss with {info.target} targets"
                + ("" if info.per_sample else " and no per-sample value"),
            )
        if info.call_inputs:
            from longtail.engine.config import call_inputs_text

            raise expected(
                "loss",
                "a loss of (logits, labels) alone (compute_loss passes nothing else)",
                f"{name!r}, whose method needs {call_inputs_text(info)} with every call",
            )

    def _build_reweighting(self, drw: Any) -> DeferredReweighting | None:
        if drw is None:
            return None
        _check_reweightable(self.criterion)
        if isinstance(drw, DeferredReweighting):
            return drw
        if isinstance(drw, bool) or not isinstance(drw, int):
            raise expected("drw", "None, a start epoch (int) or a DeferredReweighting", repr(drw))
        what = (
            f"deferred re-weighting (drw={drw}) needs a positive count for every class: its "
            "effective-number weights (1 - beta) / (1 - beta^n_c) divide by zero at n_c = 0"
        )
        zero = self._zero_count_error(what)
        if zero is not None:
            raise zero
        return DeferredReweighting(self.class_counts(), start_epoch=drw)

    def _build_sampler(self, sampler: Any, sampler_kwargs: Mapping[str, Any] | None) -> Any:
        kwargs = dict(sampler_kwargs or {})
        if sampler is None:
            if kwargs:
                raise expected("sampler_kwargs", "empty without a sampler", kwargs)
            return None
        if isinstance(sampler, str):
            check_choice("sampler", sampler, SAMPLERS)
            for key in ("num_replicas", "rank"):
                if key in kwargs:
                    raise expected(
                        "sampler_kwargs", "no num_replicas or rank (accelerate shards)", kwargs
                    )
            cls = ClassBalancedSampler if sampler == "class-balanced" else DeferredResampler
            params = inspect.signature(cls.__init__).parameters
            known = [n for n in params if n not in ("self", "targets", "num_replicas", "rank")]
            for key in kwargs:  # ``targets`` too: the trainer passes the labels itself
                if key not in known:
                    what = f"keyword arguments of {cls.__name__}, among {known}"
                    message = expected("sampler_kwargs", what, repr(key))
                    raise ValueError(f"{message}{did_you_mean(key, known)}")
            try:
                return cls(self._example_labels(sampler), num_replicas=1, rank=0, **kwargs)
            except TypeError as err:
                what = f"keyword arguments of {cls.__name__}"
                raise expected("sampler_kwargs", what, err) from None
        if kwargs:
            raise expected("sampler_kwargs", "empty when sampler is a built sampler", kwargs)
        if not hasattr(sampler, "__iter__"):
            raise expected("sampler", f"one of {SAMPLERS}, a Sampler or None", repr(sampler))
        if getattr(sampler, "num_replicas", 1) != 1:
            raise expected(
                "sampler",
                "a sampler of the whole training set (num_replicas=1: accelerate shards batches)",
                f"num_replicas={sampler.num_replicas}",
            )
        return sampler

    # ---- the Trainer hooks ---------------------------------------------------------------
    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """The longtail sampler when one was given, else the ``Trainer``'s own."""
        if self.train_sampler is None:
            return super()._get_train_sampler(train_dataset)
        dataset = self.train_dataset if train_dataset is None else train_dataset
        n = getattr(self.train_sampler, "labels", None)
        if n is not None and dataset is not None and len(n) != len(dataset):
            raise expected(
                "train_dataset",
                f"the {len(n)} examples the sampler was built for",
                f"{len(dataset)} examples",
            )
        return self.train_sampler

    def _denominator(self, labels: torch.Tensor) -> torch.Tensor:
        """``Σ_i w_{y_i}`` over the labels not equal to the loss's ``ignore_index`` (their
        number when the loss is unweighted), as a float32 scalar on the labels' device."""
        valid = labels != getattr(self.criterion, "ignore_index", -100)
        weight = getattr(self.criterion, "weight", None)
        if weight is None:
            return valid.sum().to(torch.float32)
        return weight.to(labels.device, torch.float32)[labels[valid]].sum()

    def get_batch_samples(
        self, epoch_iterator: Iterator[Any], num_batches: int, device: torch.device
    ) -> tuple[list[Any], torch.Tensor | None]:
        """The step's micro-batches, and ``Σ w_y`` over all of their labels (and, under data
        parallelism, over every process's): :meth:`compute_loss` divides by it, so the
        accumulated gradient is that of the weighted mean over the whole step."""
        batches, _ = super().get_batch_samples(epoch_iterator, num_batches, device)
        labels = [b[self.label_key] for b in batches if isinstance(b, Mapping)]
        if not labels or len(labels) != len(batches):
            return batches, None
        den = sum(self._denominator(torch.as_tensor(y).to(device)) for y in labels)
        if self.accelerator.num_processes > 1:
            den = self.accelerator.gather(den.reshape(1)).sum()
        return batches, den

    def longtail_loss(
        self,
        logits: torch.Tensor,
        labels: torch.Tensor,
        num_items_in_batch: torch.Tensor | float | None = None,
    ) -> torch.Tensor:
        """The loss of ``logits`` against ``labels``.

        Args:
            logits: ``(N, C)``, or ``(N, ..., C)`` with the classes last (token
                classification; moved to the loss's ``(N, C, ...)`` layout).
            labels: Integer labels ``(N,)`` or ``(N, ...)``; ``ignore_index`` entries count for
                nothing.
            num_items_in_batch: ``None`` for this batch's weighted mean ``Σ wℓ / Σ w``; else the
                ``Σ w`` of the whole optimiser step (from :meth:`get_batch_samples`), which the
                sum ``Σ wℓ`` of this micro-batch is divided by (times the number of processes,
                whose gradients DDP averages).
        """
        self._check_fits(logits.shape[-1], labels)
        if logits.dim() > 2:
            logits = logits.movedim(-1, 1)
        self.criterion.to(logits.device)
        per_sample = self.criterion(logits, labels)  # w_y ℓ per entry (reduction "none")
        total = per_sample.sum()
        if num_items_in_batch is None:
            den = self._denominator(labels)
            return total / torch.where(den > 0, den, torch.ones_like(den))
        den = torch.as_tensor(num_items_in_batch, dtype=torch.float32, device=total.device)
        scale = self.accelerator.num_processes
        return total * scale / torch.where(den > 0, den, torch.ones_like(den))

    def _check_fits(self, width: int, labels: torch.Tensor) -> None:
        """Raise when the class counts or the labels do not fit the model's ``width`` outputs."""
        if self._counts is not None and len(self._counts) != width:
            n = len(self._counts)
            if self._counts_source == "class_counts":
                raise expected(
                    "class_counts",
                    f"one count per model output ({width}, the logits' width)",
                    f"{n} counts",
                )
            raise ValueError(
                f"Expected the model's {width} outputs (the logits' width) to match the {n} "
                f"classes of {self._counts_source}, but they differ"
                + (
                    f": class{'es' if width - n > 1 else ''} "
                    f"{', '.join(map(str, range(n, width)))} "
                    f"ha{'ve' if width - n > 1 else 's'} no training examples"
                    if width > n
                    else ""
                )
                + f". Pass num_labels={width} to LongtailTrainer (or give the model a "
                f"config.num_labels), or class_counts= with {width} counts, one per output."
            )
        schedule = self.reweighting
        if schedule is not None and schedule.num_classes != width:
            raise expected(
                "drw",
                f"a DeferredReweighting of the model's {width} classes (the logits' width)",
                f"one of {schedule.num_classes} classes",
            )
        valid = labels != getattr(self.criterion, "ignore_index", -100)
        bad = valid & ((labels < 0) | (labels >= width))
        if bool(bad.any()):
            known = self._labels
            if known is not None and not 0 <= known.min() <= known.max() < width:
                raise _labels_error(
                    np.unique(known).tolist(), width, "the logits' width", **self._hint()
                )
            found = torch.unique(labels[valid]).tolist()
            hint = {"key": self.label_key, "per_token": labels.dim() > 1}
            raise _labels_error(found, width, "the logits' width", "labels of this batch", **hint)

    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: torch.Tensor | int | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, Any]:
        """Forward the batch without its labels and apply :meth:`longtail_loss` to the logits.

        In training (``model.training``) ``num_items_in_batch`` is the step's ``Σ w`` from
        :meth:`get_batch_samples`; in evaluation (where the ``Trainer`` passes its own count)
        it is ignored and the loss is the batch's weighted mean.
        """
        if self.label_key not in inputs:
            raise expected(
                "inputs", f"a batch with a {self.label_key!r} entry", f"keys {list(inputs)}"
            )
        inputs = dict(inputs)
        labels = inputs.pop(self.label_key)
        outputs = model(**inputs)
        den = num_items_in_batch if model.training else None
        loss = self.longtail_loss(_logits(outputs), labels, den)
        return (loss, outputs) if return_outputs else loss

"""Tests for longtail.integrations.transformers: LongtailTrainer, DRW and sampler callbacks.

Tiny models built from configs (no hub downloads); every expected value is computed here
independently: the LDAM formula of Cao et al. (NeurIPS 2019) written out, torch's cross-entropy,
the effective-number weights of Cui et al. (CVPR 2019), and the gradient of one big batch.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import warnings
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

os.environ["HF_HUB_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
pytest.importorskip("accelerate")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    BertForTokenClassification,
    TrainerCallback,
    TrainingArguments,
)

from longtail.integrations.transformers import (  # noqa: E402
    DeferredReweightingCallback,
    LongtailTrainer,
    SamplerEpochCallback,
    dataset_labels,
)
from longtail.losses import FocalLoss  # noqa: E402
from longtail.weighting import (  # noqa: E402
    ClassBalancedSampler,
    DeferredResampler,
    DeferredReweighting,
)

COUNTS = [40, 12, 6, 2]  # long-tailed, 4 classes, 60 examples
BETA = 0.9999


def long_tailed_labels(counts=COUNTS, seed=0) -> torch.Tensor:
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return y[torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))]


class DictDataset(torch.utils.data.Dataset):
    """Examples as dicts, as the Trainer's collator wants; records the indices it serves."""

    def __init__(self, y: torch.Tensor, x: torch.Tensor | None = None, key: str = "x"):
        self.y = y
        self.x = (
            torch.randn(len(y), 8, generator=torch.Generator().manual_seed(1)) if x is None else x
        )
        self.key = key
        self.served: list[int] = []

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict:
        self.served.append(int(i))
        return {self.key: self.x[i], "labels": int(self.y[i])}


class MLP(nn.Module):
    def __init__(self, num_classes: int = len(COUNTS)):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, num_classes))

    def forward(self, x, labels=None):
        return {"logits": self.net(x)}


def tiny_bert(num_labels: int = len(COUNTS), cls=BertForSequenceClassification):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        num_labels=num_labels,
    )
    return cls(config)


def token_batch(y: torch.Tensor, length: int = 6) -> dict:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(5, 50, (len(y), length), generator=g)
    ids[:, 1] = 10 + y  # the label is readable from one token: the task can be learnt
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": y}


class TokenDataset(torch.utils.data.Dataset):
    def __init__(self, y: torch.Tensor):
        self.batch = token_batch(y)

    def __len__(self) -> int:
        return len(self.batch["labels"])

    def __getitem__(self, i: int) -> dict:
        return {k: v[i] for k, v in self.batch.items()}


def targs(tmp_path, **kw) -> TrainingArguments:
    base = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        per_device_train_batch_size=8,
        dataloader_num_workers=0,
    )
    return TrainingArguments(**{**base, **kw})


def effective_weights(counts, beta=BETA):
    """(1 - β) / (1 - β^n), normalised to sum to C (Cui et al., CVPR 2019), in plain floats."""
    raw = [(1 - beta) / (1 - beta**n) for n in counts]
    return [w * len(counts) / sum(raw) for w in raw]


def ldam_reference(logits, y, counts, max_margin=0.5, scale=30.0, weight=None):
    """LDAM as in the paper: m_c ∝ n_c^(-1/4), the largest m_c = max_margin; CE(s(z - m_y e_y))."""
    raw = [n**-0.25 for n in counts]
    m = torch.tensor([max_margin * r / max(raw) for r in raw], dtype=logits.dtype)
    z = logits - F.one_hot(y, len(counts)).to(logits.dtype) * m[y][:, None]
    return F.cross_entropy(scale * z, y, weight=weight)


# ---- the loss ---------------------------------------------------------------------------------
def test_ce_loss_equals_torch_and_the_models_own_loss(tmp_path):
    model = tiny_bert().eval()
    y = long_tailed_labels()[:10]
    batch = token_batch(y)
    trainer = LongtailTrainer(model, targs(tmp_path), loss="ce", class_counts=COUNTS)
    loss = trainer.compute_loss(model, batch)
    with torch.no_grad():
        own = model(**batch)  # BertForSequenceClassification's own cross-entropy
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    torch.testing.assert_close(loss.detach(), F.cross_entropy(logits, y))
    torch.testing.assert_close(loss.detach(), own.loss)
    assert "labels" in batch  # the caller's batch is left whole


def test_ldam_loss_equals_the_formula_unweighted_and_weighted(tmp_path):
    model = tiny_bert().eval()
    y = long_tailed_labels()[:12]
    batch = token_batch(y)
    kw = {"max_margin": 0.4, "scale": 10.0}
    trainer = LongtailTrainer(
        model, targs(tmp_path), loss="ldam", loss_kwargs=kw, class_counts=COUNTS
    )
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss, outputs = trainer.compute_loss(model, batch, return_outputs=True)
        torch.testing.assert_close(outputs.logits, logits)
        torch.testing.assert_close(loss, ldam_reference(logits, y, COUNTS, **kw))
        w = torch.tensor(effective_weights(COUNTS))
        trainer.criterion.set_weight(w)
        weighted = trainer.compute_loss(model, batch)
        torch.testing.assert_close(weighted, ldam_reference(logits, y, COUNTS, **kw, weight=w))
        assert not torch.allclose(weighted, loss)


def test_training_loss_divides_by_the_steps_weight_sum(tmp_path):
    # in training, num_items_in_batch is Σw of the whole step: this batch's Σwℓ is divided by it
    model = tiny_bert().train()  # dropout is 0: train mode gives the same logits
    y = long_tailed_labels()[:8]
    batch = token_batch(y)
    trainer = LongtailTrainer(model, targs(tmp_path), loss="ce", class_counts=COUNTS)
    w = torch.tensor(effective_weights(COUNTS))
    trainer.criterion.set_weight(w)
    loss = trainer.compute_loss(model, batch, num_items_in_batch=torch.tensor(123.0))
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    expected = F.cross_entropy(logits, y, weight=w, reduction="sum") / 123.0
    torch.testing.assert_close(loss.detach(), expected)


def test_token_classification_logits_and_ignored_labels(tmp_path):
    model = tiny_bert(num_labels=3, cls=BertForTokenClassification).eval()
    ids = torch.randint(5, 50, (4, 6), generator=torch.Generator().manual_seed(3))
    labels = torch.randint(0, 3, (4, 6), generator=torch.Generator().manual_seed(4))
    labels[:, 0] = -100  # e.g. [CLS] and sub-word pieces
    batch = {"input_ids": ids, "labels": labels}
    trainer = LongtailTrainer(model, targs(tmp_path), loss="ce")
    with torch.no_grad():
        loss = trainer.compute_loss(model, batch)
        logits = model(input_ids=ids).logits  # (N, L, C)
    expected = F.cross_entropy(logits.reshape(-1, 3), labels.reshape(-1), ignore_index=-100)
    torch.testing.assert_close(loss, expected)


class GradientProbe(TrainerCallback):
    """Keeps a copy of the gradients the optimiser is about to apply, at each step."""

    def __init__(self):
        self.grads: list[list[torch.Tensor]] = []

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.grads.append([p.grad.detach().clone() for p in model.parameters()])


def test_gradient_accumulation_gives_the_gradient_of_one_big_weighted_batch(tmp_path):
    y = long_tailed_labels()
    data = DictDataset(y)
    model = MLP()
    start = copy.deepcopy(model)
    probe = GradientProbe()
    args = targs(
        tmp_path,
        per_device_train_batch_size=4,
        gradient_accumulation_steps=2,
        max_steps=1,
        max_grad_norm=0.0,
        learning_rate=0.1,
    )
    kw = {"max_margin": 0.5, "scale": 5.0}
    trainer = LongtailTrainer(
        model, args, train_dataset=data, loss="ldam", loss_kwargs=kw, drw=0, callbacks=[probe]
    )
    data.served.clear()  # the trainer read every label to count the classes
    out = trainer.train()
    idx = torch.tensor(data.served[:8])  # the two micro-batches of the one step
    w = torch.tensor(effective_weights(COUNTS))
    logits = start(data.x[idx])["logits"]
    full = ldam_reference(logits, y[idx], COUNTS, **kw, weight=w)  # Σwℓ / Σw over all 8
    full.backward()
    for got, p in zip(probe.grads[0], start.parameters(), strict=True):
        torch.testing.assert_close(got, p.grad)
    assert out.training_loss == pytest.approx(full.item(), rel=1e-5)
    # the mean of the two micro-batch means would differ: the test can tell them apart
    halves = [
        ldam_reference(logits.detach()[s], y[idx][s], COUNTS, **kw, weight=w)
        for s in (slice(0, 4), slice(4, 8))
    ]
    assert abs((sum(halves) / 2 - full).item()) > 1e-3


# ---- DRW --------------------------------------------------------------------------------------
class WeightProbe(TrainerCallback):
    """Records the loss's weight seen at each step, by epoch."""

    def __init__(self):
        self.trainer = None
        self.seen: dict[int, list] = {}

    def on_step_begin(self, args, state, control, **kw):
        w = self.trainer.criterion.weight
        self.seen.setdefault(int(state.epoch), []).append(None if w is None else w.tolist())


def test_drw_switches_to_effective_number_weights_at_its_epoch(tmp_path):
    y = long_tailed_labels()
    probe = WeightProbe()
    args = targs(tmp_path, num_train_epochs=4, per_device_train_batch_size=20)
    trainer = LongtailTrainer(
        MLP(), args, train_dataset=DictDataset(y), loss="ce", drw=2, callbacks=[probe]
    )
    probe.trainer = trainer
    assert trainer.class_counts() == COUNTS  # counted from the dataset's labels
    trainer.train()
    assert sorted(probe.seen) == [0, 1, 2, 3]
    assert all(w is None for e in (0, 1) for w in probe.seen[e])
    expected = effective_weights(COUNTS)
    for e in (2, 3):
        for w in probe.seen[e]:
            assert w == pytest.approx(expected, rel=1e-5)
    assert sum(expected) == pytest.approx(len(COUNTS))


def test_user_drw_callback_is_bound_to_the_trainers_loss(tmp_path):
    schedule = DeferredReweighting(COUNTS, start_epoch=1, beta=0.999)
    cb = DeferredReweightingCallback(schedule)
    trainer = LongtailTrainer(MLP(), targs(tmp_path), loss="focal", callbacks=[cb])
    assert cb.loss is trainer.criterion
    state = transformers.TrainerState()
    state.epoch = 1.0
    cb.on_epoch_begin(trainer.args, state, trainer.control)
    assert trainer.criterion.weight.tolist() == pytest.approx(
        effective_weights(COUNTS, 0.999), rel=1e-5
    )
    state.epoch = 0.0
    cb.on_epoch_begin(trainer.args, state, trainer.control)
    assert trainer.criterion.weight is None


def test_drw_callback_without_a_loss_says_so():
    cb = DeferredReweightingCallback(DeferredReweighting(COUNTS, start_epoch=1))
    with pytest.raises(RuntimeError, match="no loss to re-weight"):
        cb.on_epoch_begin(None, transformers.TrainerState(), None)
    with pytest.raises(ValueError, match="set_weight"):
        DeferredReweightingCallback(DeferredReweighting(COUNTS), loss=nn.Linear(2, 2))
    with pytest.raises(ValueError, match="unset when a DeferredReweighting"):
        DeferredReweightingCallback(DeferredReweighting(COUNTS), start_epoch=2)
    with pytest.raises(ValueError, match="counts"):
        DeferredReweightingCallback([10, 0, 3])  # a class without examples has no weight


def test_drw_callback_from_counts_matches_the_schedules_arguments(tmp_path):
    cb = DeferredReweightingCallback(COUNTS, start_epoch=1, beta=0.99, scheme="inverse")
    trainer = LongtailTrainer(MLP(), targs(tmp_path), loss="ce", callbacks=[cb])
    state = transformers.TrainerState()
    state.epoch = 1.0
    cb.on_epoch_begin(trainer.args, state, trainer.control)
    inverse = [1 / n for n in COUNTS]
    expected = [v * len(COUNTS) / sum(inverse) for v in inverse]
    assert trainer.criterion.weight.tolist() == pytest.approx(expected, rel=1e-6)
    assert DeferredReweightingCallback(COUNTS).schedule.start_epoch == 160


# ---- samplers ---------------------------------------------------------------------------------
def test_class_balanced_sampler_draws_balanced_batches_through_the_trainer(tmp_path):
    counts = [300, 60, 12, 3]  # 80% of the examples are class 0
    y = long_tailed_labels(counts)
    trainer = LongtailTrainer(
        MLP(),
        targs(tmp_path, per_device_train_batch_size=50),
        train_dataset=DictDataset(y),
        sampler="class-balanced",
        sampler_kwargs={"num_samples": 4000},
    )
    drawn = torch.cat([b["labels"] for b in trainer.get_train_dataloader()])
    assert len(drawn) == 4000
    freq = torch.bincount(drawn, minlength=4).double() / len(drawn)
    # uniform is 0.25 each (binomial sd ≈ 0.007); the data's own frequency of class 0 is 0.80
    assert torch.all((freq - 0.25).abs() < 0.035), freq


def test_sampler_draws_change_each_epoch_and_follow_set_epoch(tmp_path):
    y = long_tailed_labels()
    data = DictDataset(y)
    args = targs(tmp_path, num_train_epochs=2, per_device_train_batch_size=20)
    trainer = LongtailTrainer(
        MLP(), args, train_dataset=data, sampler="class-balanced", sampler_kwargs={"seed": 7}
    )
    data.served.clear()  # the trainer read every label to build the sampler
    assert any(isinstance(cb, SamplerEpochCallback) for cb in trainer.callback_handler.callbacks)
    trainer.train()
    epochs = data.served[:60], data.served[60:120]
    assert len(data.served) == 120 and epochs[0] != epochs[1]
    for e, served in enumerate(epochs):
        reference = ClassBalancedSampler(y, seed=7, num_replicas=1, rank=0)
        reference.set_epoch(e)
        assert served == list(reference)


def test_drs_shuffles_then_resamples(tmp_path):
    counts = [100, 20, 4]
    y = long_tailed_labels(counts)
    data = DictDataset(y)
    args = targs(tmp_path, num_train_epochs=2, per_device_train_batch_size=62)
    trainer = LongtailTrainer(
        MLP(3), args, train_dataset=data, sampler="drs", sampler_kwargs={"start_epoch": 1}
    )
    data.served.clear()
    trainer.train()
    n = len(y)
    first, second = data.served[:n], data.served[n : 2 * n]
    assert sorted(first) == list(range(n))  # epoch 0: a permutation, every example once
    tail = Counter(int(y[i]) for i in second)[2]  # epoch 1: balanced, ≈ 41 draws of class 2
    assert tail > 20, Counter(int(y[i]) for i in second)


# ---- end to end -------------------------------------------------------------------------------
def test_train_end_to_end_with_bert_ldam_drw_and_drs(tmp_path):
    y = long_tailed_labels()
    args = targs(
        tmp_path,
        num_train_epochs=6,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        logging_strategy="epoch",
        gradient_accumulation_steps=2,
    )
    trainer = LongtailTrainer(
        tiny_bert(),
        args,
        train_dataset=TokenDataset(y),
        eval_dataset=TokenDataset(y),
        loss="ldam",
        loss_kwargs={"scale": 10.0},
        drw=4,
        sampler="drs",
        sampler_kwargs={"start_epoch": 4},
    )
    out = trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    assert losses[3] < losses[0]  # learning, before the re-weighting changes the loss
    assert math.isfinite(out.training_loss)
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])


# ---- bad input --------------------------------------------------------------------------------
def test_bad_input_gives_clear_errors(tmp_path):
    args, data = targs(tmp_path), DictDataset(long_tailed_labels())
    with pytest.raises(ValueError, match="Did you mean 'ldam'"):
        LongtailTrainer(MLP(), args, train_dataset=data, loss="ladm")
    with pytest.raises(ValueError, match="single-label"):
        LongtailTrainer(MLP(), args, train_dataset=data, loss="asl")
    for name, needs in (("ib", "feature_norm"), ("aldr-kl", "index")):  # trained as lesser losses
        with pytest.raises(ValueError, match=rf"'{name}', whose method needs `{needs}`"):
            LongtailTrainer(MLP(), args, train_dataset=data, loss=name)
    with pytest.raises(ValueError, match="max_margin"):
        LongtailTrainer(MLP(), args, train_dataset=data, loss="ldam", loss_kwargs={"margin": 1})
    with pytest.raises(ValueError, match="sampler"):
        LongtailTrainer(MLP(), args, train_dataset=data, sampler="balanced")
    with pytest.raises(ValueError, match=r"sampler_kwargs.*Did you mean 'start_epoch'"):
        LongtailTrainer(MLP(), args, train_dataset=data, sampler="drs", sampler_kwargs={"start": 1})
    with pytest.raises(ValueError, match=r"sampler_kwargs.*among.*'targets'"):
        kw = {"targets": [0, 1]}  # the trainer passes the labels itself
        LongtailTrainer(MLP(), args, train_dataset=data, sampler="drs", sampler_kwargs=kw)
    with pytest.raises(ValueError, match="Did you mean 'scheme'"):  # the docs promise close names
        kw = {"sheme": "sqrt-inverse"}
        LongtailTrainer(
            MLP(), args, train_dataset=data, sampler="class-balanced", sampler_kwargs=kw
        )
    with pytest.raises(ValueError, match="num_replicas"):
        sampler = ClassBalancedSampler(data.y, num_replicas=2, rank=0)
        LongtailTrainer(MLP(), args, train_dataset=data, sampler=sampler)
    with pytest.raises(ValueError, match="class_counts"):
        LongtailTrainer(MLP(), args, loss="ldam")  # no counts and no data to count
    with pytest.raises(ValueError, match="label_smoothing"):
        LongtailTrainer(MLP(), targs(tmp_path, label_smoothing_factor=0.1), train_dataset=data)
    with pytest.raises(ValueError, match="drw"):
        LongtailTrainer(MLP(), args, train_dataset=data, drw=1.5)
    trainer = LongtailTrainer(MLP(), args, train_dataset=data)
    with pytest.raises(ValueError, match="'labels'"):
        trainer.compute_loss(trainer.model, {"x": data.x[:2]})


def test_labels_that_are_not_class_indices_are_refused_with_a_mapping(tmp_path):
    y = torch.tensor([3] * 20 + [7] * 6 + [42] * 2)  # three classes, not numbered 0..2
    data, args = DictDataset(y), targs(tmp_path)
    with pytest.raises(ValueError) as err:  # no config: the number of outputs is unknown
        LongtailTrainer(MLP(3), args, train_dataset=data, loss="ldam")
    message = str(err.value)
    assert "labels {3, 7, 42}" in message and "{3: 0, 7: 1, 42: 2}" in message
    assert "0..2" in message and "no config.num_labels" in message and "[0, 1, 2, 4" not in message
    with pytest.raises(ValueError) as err:  # a config: its num_labels is named
        LongtailTrainer(tiny_bert(3), args, train_dataset=data, loss="ldam")
    message = str(err.value)
    assert "0..2 of the model's 3 outputs (model.config.num_labels=3)" in message
    assert "labels {3, 7, 42}" in message and "{3: 0, 7: 1, 42: 2}" in message
    # a loss without counts: caught at the first batch, from the logits' width (3)
    trainer = LongtailTrainer(MLP(3), args, train_dataset=data, loss="ce")
    batch = {"x": data.x[:4], "labels": torch.tensor([3, 42, 7, 3])}
    with pytest.raises(ValueError, match=r"0\.\.2 of the model's 3 outputs \(the logits' width\)"):
        trainer.compute_loss(trainer.model, batch)


def test_a_class_without_training_examples_is_named(tmp_path):
    y = long_tailed_labels()  # classes 0..3, for a model of 5 outputs: class 4 has no example
    data, args = DictDataset(y), targs(tmp_path)
    trainer = LongtailTrainer(MLP(5), args, train_dataset=data, drw=1)  # no config: 4 counted
    with pytest.raises(ValueError) as err:
        trainer.compute_loss(trainer.model, {"x": data.x[:4], "labels": y[:4]})
    message = str(err.value)
    assert "model's 5 outputs (the logits' width)" in message and "4 classes" in message
    assert "class 4 has no training examples" in message
    assert "num_labels=5" in message and "class_counts= with 5 counts" in message
    # the number of outputs known (num_labels=, or the config): the empty class is named
    for model, kw in ((MLP(5), {"num_labels": 5}), (tiny_bert(5), {})):
        with pytest.raises(ValueError) as err:
            LongtailTrainer(model, args, train_dataset=data, drw=1, **kw)
        message = str(err.value)
        assert "class 4 of the 5 has none" in message and "[40, 12, 6, 2, 0]" in message
        assert "deferred re-weighting (drw=1)" in message and "n_c = 0" in message
    with pytest.raises(ValueError, match=r"class 4 of the 5 has none.*loss 'ldam'"):
        LongtailTrainer(tiny_bert(5), args, train_dataset=data, loss="ldam")
    with pytest.raises(ValueError, match="one count per model output"):
        LongtailTrainer(tiny_bert(5), args, loss="ldam", class_counts=COUNTS)
    with pytest.raises(ValueError, match="num_labels"):
        LongtailTrainer(tiny_bert(4), args, train_dataset=data, num_labels=5)
    assert LongtailTrainer(MLP(), args, train_dataset=data, loss="ldam").class_counts() == COUNTS


def _drw_warnings(record) -> list[str]:
    return [str(w.message) for w in record if "Deferred re-weighting starts" in str(w.message)]


def test_drw_that_never_starts_warns_at_train_begin(tmp_path):
    data = DictDataset(long_tailed_labels())
    for kw, drw, told in (
        (
            {"num_train_epochs": 2},
            50,
            "epoch 50 (0-based), but training runs 2 epochs (args.num_train_epochs=2)",
        ),
        ({"max_steps": 2}, 1, "epoch 1 (0-based), but training runs 1 epoch (args.max_steps=2)"),
    ):
        args = targs(tmp_path, per_device_train_batch_size=30, **kw)  # 2 steps an epoch
        trainer = LongtailTrainer(MLP(), args, train_dataset=data, drw=drw)
        with pytest.warns(UserWarning) as record:
            trainer.train()
        assert _drw_warnings(record) == [
            f"Deferred re-weighting starts at {told}: the loss stays unweighted for the whole "
            "run. Lower the start epoch or train for more epochs (a run resumed and extended "
            "later does reach it)."
        ]
    args = targs(tmp_path, per_device_train_batch_size=30, num_train_epochs=2)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        LongtailTrainer(MLP(), args, train_dataset=data, drw=1).train()
    assert _drw_warnings(record) == []  # it starts at the second of two epochs


def test_dataset_labels_finds_labels_in_each_layout():
    y = [2, 0, 1, 1]

    class WithTargets:
        targets = y

    class Columns:  # what a datasets.Dataset looks like
        def __init__(self, columns):
            self.column_names = columns

        def __getitem__(self, key):
            return {"label": y, "text": ["a"] * 4}[key]

    assert dataset_labels(WithTargets()).tolist() == y
    assert dataset_labels(Columns(["text", "label"])).tolist() == y
    assert dataset_labels(DictDataset(torch.tensor(y))).tolist() == y
    with pytest.raises(ValueError, match="column"):
        dataset_labels(Columns(["text"]))
    with pytest.raises(ValueError, match="dicts"):
        dataset_labels([(0, 1)])


def test_importing_longtail_does_not_import_transformers():
    code = "import sys, longtail; sys.exit('transformers' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_drs_that_never_switches_warns_at_train_begin(tmp_path):
    data = DictDataset(long_tailed_labels())
    args = targs(tmp_path, per_device_train_batch_size=30, num_train_epochs=2)
    for start, expected_warnings in ((50, 1), (1, 0)):
        trainer = LongtailTrainer(
            MLP(), args, train_dataset=data, sampler="drs", sampler_kwargs={"start_epoch": start}
        )
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            trainer.train()
        ours = [str(w.message) for w in record if "Deferred re-sampling" in str(w.message)]
        assert len(ours) == expected_warnings
        if ours:
            assert ours[0] == (
                "Deferred re-sampling starts at epoch 50 (0-based), but training runs 2 epochs: "
                "every epoch is drawn uniformly. Lower start_epoch or train for more epochs."
            )


# ---- token classification: counts over tokens, no per-example sampler -------------------------
def token_rows(n: int = 24, seed: int = 5) -> list[dict]:
    """Sentences of 3..7 tokens, [CLS] and [SEP] labelled -100, classes 0..3 long-tailed."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(n):
        length = int(torch.randint(3, 8, (), generator=g))
        classes = torch.multinomial(torch.tensor([8.0, 4.0, 2.0, 1.0]), length, True, generator=g)
        ids = torch.randint(5, 50, (length + 2,), generator=g).tolist()
        rows.append({"input_ids": ids, "labels": [-100, *classes.tolist(), -100]})
    return rows


def count_tokens(rows, ignore=-100, classes=4) -> list[int]:
    counts = [0] * classes
    for row in rows:
        for label in row["labels"]:
            if label != ignore:
                counts[label] += 1
    return counts


def test_token_classification_counts_the_tokens_for_counts_losses_and_drw(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = token_rows()
    expected = count_tokens(rows)
    ragged = datasets.Dataset.from_list(rows)  # sentences of different lengths
    model = tiny_bert(num_labels=4, cls=BertForTokenClassification)
    for data in (ragged, rows):
        trainer = LongtailTrainer(model, targs(tmp_path), train_dataset=data, loss="ldam", drw=1)
        assert trainer.class_counts() == expected
        later = trainer.reweighting.weights(1)
        assert later.tolist() == pytest.approx(effective_weights(expected))
    # another ignore_index of the loss: that label is what is left out of the counts
    renamed = [{**r, "labels": [255 if t == -100 else t for t in r["labels"]]} for r in rows]
    kwargs = {"ignore_index": 255}
    trainer = LongtailTrainer(
        model, targs(tmp_path), train_dataset=renamed, loss="ldam", loss_kwargs=kwargs
    )
    assert trainer.class_counts() == expected


def test_token_classification_refuses_a_per_example_sampler_with_the_way_out(tmp_path):
    model = tiny_bert(num_labels=4, cls=BertForTokenClassification)
    for sampler in ("class-balanced", "drs"):
        with pytest.raises(ValueError) as err:
            LongtailTrainer(model, targs(tmp_path), train_dataset=token_rows(), sampler=sampler)
        message = str(err.value)
        assert "per-token labels" in message and "drw=" in message, message
    with pytest.raises(ValueError, match="one class label per example"):
        dataset_labels(token_rows())


def test_the_renumbering_hint_runs_on_the_column_the_labels_came_from(tmp_path):
    datasets = pytest.importorskip("datasets")
    x = torch.randn(6, 8).tolist()
    for key in ("label", "labels"):
        data = datasets.Dataset.from_dict({"x": x, key: [3, 7, 42, 3, 7, 42]})
        with pytest.raises(ValueError) as err:
            LongtailTrainer(tiny_bert(3), targs(tmp_path), train_dataset=data, loss="ldam")
        hint = str(err.value).split("dataset.map(")[1].rsplit("))", 1)[0]
        mapping = {3: 0, 7: 1, 42: 2}
        mapped = data.map(eval(hint, {"mapping": mapping}))  # the hint, run as written
        assert sorted(set(mapped[key])) == [0, 1, 2]
    rows = [
        {**r, "labels": [t if t < 0 else 10 * t + 1 for t in r["labels"]]} for r in token_rows()
    ]
    tokens = datasets.Dataset.from_list(rows)
    model = tiny_bert(num_labels=4, cls=BertForTokenClassification)
    with pytest.raises(ValueError) as err:
        LongtailTrainer(model, targs(tmp_path), train_dataset=tokens, loss="ldam")
    hint = str(err.value).split("dataset.map(")[1].rsplit("))", 1)[0]
    mapped = tokens.map(eval(hint, {"mapping": {1: 0, 11: 1, 21: 2, 31: 3}}))
    assert count_tokens(mapped) == count_tokens(token_rows())


# ---- boundaries a mutant audit found untested -------------------------------------------
def test_an_epoch_a_rounding_error_below_a_whole_number_counts_as_that_epoch():
    # a resumed Trainer's state.epoch can be 0.9999999999 for epoch 1
    loss = FocalLoss()
    cb = DeferredReweightingCallback([500, 50, 5], start_epoch=1, beta=0.999, loss=loss)
    cb.on_epoch_begin(None, SimpleNamespace(epoch=1.0 - 1e-9), None)
    assert cb.epoch == 1
    assert loss.weight.tolist() == pytest.approx(effective_weights([500, 50, 5], 0.999), rel=1e-5)


def test_drs_starting_at_the_last_epoch_count_warns():
    s = DeferredResampler(torch.tensor([0] * 8 + [1] * 2), start_epoch=2)
    with pytest.warns(UserWarning, match="Deferred re-sampling starts at epoch 2"):
        SamplerEpochCallback(s).on_train_begin(None, SimpleNamespace(num_train_epochs=2), None)


def test_the_sampler_callback_sets_the_epoch_it_is_told():
    # inside LongtailTrainer transformers also calls set_epoch itself: call the callback alone
    s = ClassBalancedSampler(torch.tensor([0] * 8 + [1] * 2), num_replicas=1, rank=0)
    SamplerEpochCallback(s).on_epoch_begin(None, SimpleNamespace(epoch=2.0), None)
    assert s.epoch == 2

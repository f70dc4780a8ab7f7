"""Training throughput of the engine against a reference-style loop, in the same process.

The engine is timed twice: with ``compile=True`` (the paper preset's default) and eagerly
(the quick preset's). The reference loop is written the way the LDAM-DRW code trains: a
``Dataset`` whose ``__getitem__`` transforms one image at a time in Python (pad, random crop,
flip, to float, normalise), a ``DataLoader`` that collates batches, an NCHW (contiguous)
model, the reference LDAM loss (dense one-hot + matmul) and no denormal flushing. The engine
is :func:`longtail.engine.train` itself, one epoch over the same images after a warm-up epoch,
with the same model, batch size, optimizer and loss family; its images/s is read from the
run's log (training only, evaluation excluded).

Each round times the engine and the reference back to back and the reported figure is the
median of the per-round ratios, so slow phases of a shared machine hit both sides.

    python benchmarks/bench_train.py                 # paper model (ResNet-32, width 16)
    python benchmarks/bench_train.py --quick         # one round, fewer images
    python benchmarks/bench_train.py --model resnet20 --width 8   # the quick preset's model
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from longtail.data import load_image_dataset
from longtail.engine import make_config, train
from longtail.engine.train import prepare_data
from longtail.models import create_model


class PerImageDataset(Dataset):
    """Reference-style: one image at a time, transformed in Python (as torchvision would)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, mean, std, padding: int = 4) -> None:
        self.x, self.y = x, y  # uint8 (N, C, H, W), int64 (N,)
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        self.padding = padding

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int):
        img = self.x[i]
        p = self.padding
        padded = np.pad(img, ((0, 0), (p, p), (p, p)))
        h, w = img.shape[1:]
        top, left = random.randint(0, 2 * p), random.randint(0, 2 * p)
        img = padded[:, top : top + h, left : left + w]
        if random.random() < 0.5:
            img = img[:, :, ::-1]
        img = (img.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(img)), int(self.y[i])


class ReferenceLDAM(torch.nn.Module):
    """LDAM as the reference repository writes it: dense one-hot, a matmul for the margins."""

    def __init__(self, counts, max_m: float = 0.5, s: float = 30.0) -> None:
        super().__init__()
        m = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, np.float64)))
        m = m * (max_m / m.max())
        self.register_buffer("m_list", torch.tensor(m, dtype=torch.float32))
        self.s = s

    def forward(self, x, target):
        index = torch.zeros_like(x, dtype=torch.uint8)
        index.scatter_(1, target.view(-1, 1), 1)
        index_float = index.float()
        batch_m = torch.matmul(self.m_list[None, :], index_float.transpose(0, 1)).view((-1, 1))
        output = torch.where(index.bool(), x - batch_m, x)
        return F.cross_entropy(self.s * output, target)


def reference_epoch(data, config, workers: int) -> float:
    """Images/s of one epoch of the reference-style loop."""
    torch.manual_seed(config.seed)
    model = create_model(
        config.model, data["num_classes"], data["channels"], config.width, normed=True
    )
    crit = ReferenceLDAM(data["counts"].tolist())
    opt = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=2e-4
    )
    ds = PerImageDataset(
        data["x_train"].numpy(), data["y_train"].numpy(), data["mean"], data["std"]
    )
    loader = DataLoader(
        ds,
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=False,
    )
    model.train()
    for _epoch in range(2):  # the first epoch warms up allocators and threads; time the second
        t0 = time.perf_counter()
        seen = 0
        for x, y in loader:
            loss = crit(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(y)
    return seen / (time.perf_counter() - t0)


def engine_epoch(config) -> float:
    """Images/s of the second epoch of :func:`longtail.engine.train` (training only)."""
    with tempfile.TemporaryDirectory() as d:
        train(config, d, progress=False)
        row = json.loads((Path(d) / "log.jsonl").read_text().splitlines()[1])
    return row["images_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet32")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--images", type=int, default=3840, help="images per timed epoch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=None, help="reference DataLoader workers")
    ap.add_argument("--quick", action="store_true", help="1 round of 1280 images")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.images = 1, 1280

    # Fashion-MNIST exp-100 (the quick Table 1 data), the head class cut so one epoch has
    # about `images` images; the same subset feeds both loops. The engine's run ends with a
    # test evaluation that is not timed; a 500-image test set keeps it short.
    full = load_image_dataset("fashion-mnist")
    tmp = tempfile.TemporaryDirectory()
    npz = Path(tmp.name) / "fmnist-small-test.npz"
    np.savez(
        npz,
        x_train=full.x_train.numpy(),
        y_train=full.y_train.numpy(),
        x_test=full.x_test[:500].numpy(),
        y_test=full.y_test[:500].numpy(),
    )
    n_max = 6000
    while True:
        config = make_config(
            "paper",
            dataset=str(npz),
            method="ldam",  # the same computation; a DRW phase would not fit two epochs
            epochs=2,
            warmup_epochs=0,
            lr_steps=(),
            model=args.model,
            width=args.width,
            n_max=n_max,
            eval_every=0,
        )
        data = prepare_data(config)
        if len(data["y_train"]) <= args.images or n_max < 100:
            break
        n_max = int(n_max * 0.9)
    n = len(data["y_train"])
    workers_options = [args.workers] if args.workers is not None else [0, 2]
    compiled = dataclasses.replace(config, compile=True)
    eager = dataclasses.replace(config, compile=False)
    rows = []
    for r in range(args.rounds):
        row = {"compiled": engine_epoch(compiled), "eager": engine_epoch(eager)}
        refs = {w: reference_epoch(data, config, w) for w in workers_options}
        row["reference"] = max(refs.values())  # the reference at its best worker count
        rows.append(row)
        print(
            f"round {r}: engine {row['compiled']:.0f} img/s compiled, {row['eager']:.0f} eager; "
            "reference " + ", ".join(f"{v:.0f} img/s ({w} workers)" for w, v in refs.items()),
            flush=True,
        )
    summary = {
        "model": f"{args.model} width {args.width}",
        "images_per_epoch": n,
        "batch": config.batch_size,
        "threads": torch.get_num_threads(),
        "rounds": rows,
    }
    for k in ("compiled", "eager", "reference"):
        summary[f"{k}_img_s"] = statistics.median(r[k] for r in rows)
    for k in ("compiled", "eager"):
        summary[f"{k}_ratio"] = statistics.median(r[k] / r["reference"] for r in rows)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['model']}, batch {summary['batch']}, {n} images/epoch, "
            f"{summary['threads']} threads, median of {len(rows)} paired rounds: "
            f"engine compiled {summary['compiled_img_s']:.0f} img/s "
            f"({summary['compiled_ratio']:.2f}x the reference), "
            f"eager {summary['eager_img_s']:.0f} img/s ({summary['eager_ratio']:.2f}x), "
            f"reference {summary['reference_img_s']:.0f} img/s (its best worker count)"
        )


if __name__ == "__main__":
    main()

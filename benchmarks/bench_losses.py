"""Forward+backward time and peak memory of every registered loss, relative to cross-entropy.

What is measured
----------------
For each problem size (N samples, C classes) and for every loss in ``lt.list_losses()`` this
script measures one training step of the loss alone — ``logits.grad = None``, forward, backward —
and compares it with ``torch.nn.functional.cross_entropy`` in the same process:

* **Inputs.** The imbalance losses are meant to run on cosine logits, so every loss gets
  ``z ~ uniform(-1, 1)`` of shape (N, C) (what a ``NormedLinear`` head produces). The baseline is
  ``F.cross_entropy(30·z)``: LDAM and MM rescale by s = 30 before their internal cross-entropy,
  so that is what cross-entropy costs on the logits they actually feed it. ``F.cross_entropy(z)``
  on the unscaled logits is reported as a second baseline. Targets are int64 class indices drawn
  from the long-tailed class distribution ``lt.imbalance_counts(5000, C, 100)``, which is also the
  ``class_counts`` every loss is built with; a loss of real-valued targets (kind ``"value"``:
  class k stands for the value k) gets those indices moved by uniform(−0.5, 0.5), clamped to
  [0, C − 1]. A multi-label loss (kind ``"multilabel"``: ``sigmoid-focal``, ``asl``, ``zlpr``,
  ...) gets (N, C) 0/1 float multi-hot targets instead, drawn independently per entry with class
  ``c`` positive with probability ``π_c = min(1, L · n_c / Σ_k n_k)`` (``L = 3`` labels per sample
  on average, the class frequencies long-tailed like the counts, rows with no positive possible),
  and is compared also with ``F.binary_cross_entropy_with_logits`` on the same targets.
* **Time.** After warm-up, all callables (the baselines and every loss) run in round-robin
  order, reshuffled every round, so that drift (frequency scaling, other load) hits all of them
  alike. Each call is timed with ``time.perf_counter`` around forward+backward; the reported time
  is the median over the rounds. Each loss step is paired with a baseline step run just before
  it, and the time ratio reported is the median of these paired ratios (load on a shared machine
  comes in bursts that a pair mostly shares).
* **Peak memory.** One forward+backward is run under ``torch.profiler`` with
  ``profile_memory=True``. The allocation events (``[memory]`` events: positive sizes are
  allocations, negative sizes are frees) are replayed in time order to get the running total of
  bytes allocated *during the step*, whose maximum is the peak. Memory that existed before the
  step (logits, targets, the loss module's buffers) is not counted, and frees of such memory are
  ignored; the gradient ``logits.grad`` created by the step is counted. The method is checked at
  start-up: allocating one (N, C) float32 tensor, and ``logits.sum().backward()`` (which
  materialises an (N, C) gradient), must both read N·C·4 bytes. Memory does not depend on the
  denormal setting, so it is measured once per size and shown in both tables.
* **Denormals.** Everything is run twice, with ``torch.set_flush_denormal(False)`` and
  ``(True)`` — on CPU, denormal intermediates can make ``F.cross_entropy`` on scaled logits about
  2× slower — giving one table per setting. The process's setting is restored afterwards.

Targets: every loss within 1.5× of the baseline's time and 2× of its peak memory at every size;
rows that miss are marked.

Run::

    PYTHONPATH=src python benchmarks/bench_losses.py            # default sizes, < 3 min on 2 cores
    PYTHONPATH=src python benchmarks/bench_losses.py --quick    # small size, few repeats
    PYTHONPATH=src python benchmarks/bench_losses.py --sizes 512x10000 --losses ldam,mm \\
        --repeats 9 --json results.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F

import longtail as lt

TIME_TARGET = 1.5  # loss time / baseline time must be <= this
MEMORY_TARGET = 2.0  # loss peak memory / baseline peak memory must be <= this
LOGIT_SCALE = 30.0  # the s of LDAM / MM: what they multiply cosine logits by before CE
DEFAULT_SIZES: tuple[tuple[int, int], ...] = ((1024, 1000), (256, 100_000))
QUICK_SIZES: tuple[tuple[int, int], ...] = ((1024, 1000),)

BASELINE = "F.cross_entropy(30·z)"
UNSCALED_BASELINE = "F.cross_entropy(z)"
# the reference for multi-label (sigmoid) losses: the fused BCE kernel on the same multi-hot targets
BCE_BASELINE = "F.binary_cross_entropy_with_logits(z, multi-hot)"
LABELS_PER_SAMPLE = 3.0  # mean positives per row of the multi-label targets
REFERENCE_ROWS = (BASELINE, UNSCALED_BASELINE, BCE_BASELINE)


def is_reference_row(name: str) -> bool:
    """Rows shown for comparison, without a target: baselines and reference-style losses."""
    return name in REFERENCE_ROWS or name.endswith("(reference-style)")


MEMORY_METHOD = (
    "torch.profiler(profile_memory=True): replay of allocation/free events during one "
    "forward+backward; peak of bytes allocated during the step (inputs excluded)"
)


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The ``model name`` line of /proc/cpuinfo (or the best platform guess)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def flush_denormal_enabled() -> bool:
    """Whether flush-to-zero is on (torch has no getter: probe it with a float32 denormal)."""
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # denormal in float32
    return bool((tiny * 1.0).item() == 0.0)


@contextlib.contextmanager
def flush_denormal(enabled: bool) -> Iterator[None]:
    """Run the block with ``torch.set_flush_denormal(enabled)``, then restore the old setting."""
    previous = flush_denormal_enabled()
    if not torch.set_flush_denormal(enabled) and enabled:
        print("warning: this CPU does not support flush_denormal", file=sys.stderr)
    try:
        yield
    finally:
        torch.set_flush_denormal(previous)


# --------------------------------------------------------------------------------------------
# Peak memory (torch profiler)
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence C-level stderr (the profiler prints a start/stop line per session)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _allocation_events(prof: torch.profiler.profile) -> list[tuple[int, int, int | None, int]]:
    """CPU allocation events as (time_ns, order, ptr, nbytes), nbytes < 0 for frees.

    Uses the profiler's event tree (which carries the pointer of every block, so frees can be
    matched to allocations — the route ``torch/profiler/_memory_profiler.py`` takes). If that
    private API is missing, falls back to the flat kineto ``[memory]`` events, without pointers.
    """
    results = prof.profiler.kineto_results
    events: list[tuple[int, int, int | None, int]] = []
    try:
        from torch._C._profiler import _EventType

        stack = list(results.experimental_event_tree())
        while stack:
            node = stack.pop()
            stack.extend(node.children)
            if node.tag == _EventType.Allocation:
                extra = node.extra_fields
                if extra.device.type == "cpu":
                    events.append((node.start_time_ns, len(events), extra.ptr, extra.alloc_size))
    except (ImportError, AttributeError):
        events = [
            (e.start_ns(), i, None, e.nbytes())
            for i, e in enumerate(results.events())
            if e.name() == "[memory]" and str(e.device_type()).endswith("CPU")
        ]
    events.sort(key=lambda e: (e[0], e[1]))
    return events


def peak_memory_bytes(step: Callable[[], object]) -> int:
    """Peak bytes allocated while ``step()`` runs, not counting memory that existed before."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    with _quiet_stderr(), torch.profiler.profile(activities=activities, profile_memory=True) as p:
        step()
    live: dict[int, int] = {}
    current = peak = 0
    for _, _, ptr, nbytes in _allocation_events(p):
        if nbytes > 0:
            current += nbytes
            if ptr is not None:
                live[ptr] = nbytes
        elif ptr is None:
            current += nbytes
        elif ptr in live:  # a free of a block allocated before the step is ignored
            current -= live.pop(ptr)
        peak = max(peak, current)
    return peak


def check_memory_method(n: int = 512, c: int = 1000, tolerance: int = 4096) -> list[str]:
    """Sanity-check ``peak_memory_bytes``; returns a list of failures (empty when it works)."""
    expected = n * c * 4
    x = torch.rand(n, c, requires_grad=True)

    def alloc_one() -> None:
        torch.empty(n, c).fill_(1.0)

    def sum_backward() -> None:
        x.sum().backward()  # grad of sum is an expanded scalar; AccumulateGrad materialises it

    failures = []
    for name, fn in (
        ("one (N, C) float32 tensor", alloc_one),
        ("x.sum().backward()", sum_backward),
    ):
        x.grad = None
        got = peak_memory_bytes(fn)
        if abs(got - expected) > tolerance:
            failures.append(f"{name}: read {got} bytes, expected {expected} ± {tolerance}")
    return failures


# --------------------------------------------------------------------------------------------
# Benchmark
# --------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One thing to time: ``fn()`` returns a scalar loss whose graph leads to ``leaf``."""

    name: str
    target: str
    leaf: torch.Tensor
    fn: Callable[[], torch.Tensor]

    def step(self) -> None:
        self.leaf.grad = None
        self.fn().backward()

    def timed_step(self) -> float:
        self.leaf.grad = None  # freeing the previous gradient is not part of the timed step
        start = time.perf_counter()
        self.fn().backward()
        return time.perf_counter() - start


@dataclass
class Measurement:
    name: str
    target: str
    times_s: list[float] = field(default_factory=list)
    peak_bytes: int | None = None
    ratios: list[float] = field(default_factory=list)  # per-pair ratios to the baseline

    @property
    def median_s(self) -> float:
        return statistics.median(self.times_s)


@dataclass
class SizeResult:
    n: int
    c: int
    flush_denormal: bool
    measurements: dict[str, Measurement]

    def time_ratio(self, name: str, baseline: str = BASELINE) -> float:
        m = self.measurements[name]
        if baseline == BASELINE and m.ratios:
            return statistics.median(m.ratios)  # paired: robust to bursts of load
        return m.median_s / self.measurements[baseline].median_s

    def memory_ratio(self, name: str, baseline: str = BASELINE) -> float | None:
        peak = self.measurements[name].peak_bytes
        base = self.measurements[baseline].peak_bytes
        return None if peak is None or not base else peak / base


def build_cases(n: int, c: int, losses: Sequence[str], seed: int = 0) -> list[Case]:
    """Both baselines and one case per loss, all on the same logits and targets."""
    gen = torch.Generator().manual_seed(seed)
    counts = lt.imbalance_counts(5000, c, 100)
    logits = (torch.rand(n, c, generator=gen) * 2 - 1).requires_grad_()
    scaled = (logits.detach() * LOGIT_SCALE).requires_grad_()
    prior = torch.tensor(counts, dtype=torch.float64)
    target = torch.multinomial(prior, n, replacement=True, generator=gen)

    cases = [
        Case(BASELINE, "index", scaled, lambda: F.cross_entropy(scaled, target)),
        Case(UNSCALED_BASELINE, "index", logits, lambda: F.cross_entropy(logits, target)),
    ]
    multihot = None
    if any(lt.get_loss_info(name).target == "multilabel" for name in losses):
        multihot = multilabel_targets(n, counts, gen)
        cases.append(
            Case(
                BCE_BASELINE,
                "multilabel",
                logits,
                lambda: F.binary_cross_entropy_with_logits(logits, multihot),
            )
        )
    values = None
    if any(lt.get_loss_info(name).target == "value" for name in losses):
        # regression targets for the "value" losses (class k stands for the value k): the class
        # indices moved by up to half a class, so the values keep the long-tailed distribution
        jitter = torch.rand(n, generator=gen) - 0.5
        values = (target.float() + jitter).clamp(0, c - 1)
    for name in losses:
        criterion = lt.create_loss_for_counts(name, counts)
        kind = lt.get_loss_info(name).target
        y = values if kind == "value" else multihot if kind == "multilabel" else target
        cases.append(Case(name, kind, logits, lambda m=criterion, y=y: m(logits, y)))
        if name in REFERENCE_STYLE:
            fn = REFERENCE_STYLE[name]
            margins = lt.functional.ldam_margins(counts).float()
            cases.append(
                Case(
                    f"{name} (reference-style)",
                    "index",
                    logits,
                    lambda fn=fn, m=margins: fn(logits, target, m),
                )
            )
    return cases


def multilabel_targets(n: int, counts: Sequence[int], gen: torch.Generator) -> torch.Tensor:
    """(n, C) float 0/1 targets: entry (i, c) positive with probability
    ``min(1, LABELS_PER_SAMPLE · n_c / Σ_k n_k)``, independently (long-tailed label frequencies,
    about ``LABELS_PER_SAMPLE`` positives per row)."""
    prior = torch.tensor(counts, dtype=torch.float64)
    prob = (LABELS_PER_SAMPLE * prior / prior.sum()).clamp(max=1.0).float()
    return (torch.rand(n, len(counts), generator=gen) < prob).float()


# The way the public reference repositories compute these losses (LDAM-DRW, Maximum-Margin-LDAM):
# a dense one-hot mask, a matmul to gather the batch's margins, torch.where, then cross-entropy on
# the rescaled result. Written here for timing only, from their published description.
def _dense_onehot(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    index = torch.zeros_like(x, dtype=torch.bool)
    index.scatter_(1, target.view(-1, 1), True)
    return index


def ldam_reference_style(x: torch.Tensor, target: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    index = _dense_onehot(x, target)
    batch_m = torch.matmul(m[None, :], index.float().t()).view(-1, 1)
    output = torch.where(index, x - batch_m, x)
    return F.cross_entropy(LOGIT_SCALE * output, target)


def mm_reference_style(x: torch.Tensor, target: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    index = _dense_onehot(x, target)
    onehot = index.float()
    with torch.no_grad():
        pos = x.gather(1, target.view(-1, 1))
        max_neg = (x * (1.0 - onehot) - 1e9 * onehot).max(1, keepdim=True)[0]
        gap = pos - max_neg
        fg = torch.exp(-gap.clamp(min=0) - 0.6 * 1.5) * (gap >= 0).float()
        bg = torch.exp(-(-gap).clamp(min=0) - 0.6) * (gap < 0).float()
        delta = fg + bg
    output = torch.where(index, x - delta, x)
    return F.cross_entropy(LOGIT_SCALE * output, target)


REFERENCE_STYLE: dict[str, Callable[..., torch.Tensor]] = {
    "ldam": ldam_reference_style,
    "mm": mm_reference_style,
}


@dataclass(frozen=True)
class Schedule:
    """How many rounds to time: at least ``min_rounds``; more, up to ``max_rounds``, while the
    rounds of one (size, denormal setting) have taken less than ``budget_s`` seconds."""

    warmup: int
    min_rounds: int
    max_rounds: int
    budget_s: float

    def describe(self) -> str:
        if self.min_rounds == self.max_rounds:
            rounds = f"{self.min_rounds} rounds"
        else:
            rounds = (
                f"{self.min_rounds}–{self.max_rounds} rounds (more while a size's timing "
                f"takes < {self.budget_s:g} s)"
            )
        return f"median of {rounds}, after {self.warmup} warm-up round(s)"


def time_round_robin(
    cases: Sequence[Case], schedule: Schedule, seed: int = 0
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Warm up, then time rounds over all cases, each round in a new random order.

    Every case is timed right after a run of the baseline (``cases[0]``), and the ratio of the
    pair is kept: on a shared 2-core machine the time of one step comes in bursts (a step can
    take 2× longer for a while), and a ratio taken within a pair cancels most of that.
    Returns the times of each case and its per-pair ratios to the baseline.
    """
    for _ in range(schedule.warmup):
        for case in cases:
            case.step()
    base, others = cases[0], list(cases[1:])
    rng = random.Random(seed)
    times: dict[str, list[float]] = {case.name: [] for case in cases}
    ratios: dict[str, list[float]] = {case.name: [] for case in cases}
    start = time.perf_counter()
    for done in range(schedule.max_rounds):
        if done >= schedule.min_rounds and time.perf_counter() - start >= schedule.budget_s:
            break
        rng.shuffle(others)
        for case in others:
            b = base.timed_step()
            s = case.timed_step()
            times[base.name].append(b)
            times[case.name].append(s)
            ratios[case.name].append(s / b)
    for case in cases:
        case.leaf.grad = None
    return times, ratios


def run_size(
    n: int, c: int, losses: Sequence[str], schedule: Schedule, measure_memory: bool
) -> list[SizeResult]:
    """Peak memory once, then timing with flush_denormal off and on (one SizeResult each)."""
    cases = build_cases(n, c, losses)
    peaks: dict[str, int | None] = dict.fromkeys((case.name for case in cases), None)
    if measure_memory:
        with flush_denormal(False):
            for case in cases:
                case.step()  # warm-up (lazy initialisation) outside the profiled step
                case.leaf.grad = None
                peaks[case.name] = peak_memory_bytes(lambda case=case: case.fn().backward())
                case.leaf.grad = None

    results = []
    for flush in (False, True):
        print(f"  timing N={n} C={c} flush_denormal={flush}", file=sys.stderr, flush=True)
        with flush_denormal(flush):
            times, ratios = time_round_robin(cases, schedule)
        measurements = {
            case.name: Measurement(
                case.name, case.target, times[case.name], peaks[case.name], ratios[case.name]
            )
            for case in cases
        }
        results.append(SizeResult(n, c, flush, measurements))
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"


def _mib(nbytes: int | None) -> str:
    if nbytes is None:
        return "n/a"
    mib = nbytes / 2**20
    return f"{mib:.3g} MiB" if mib < 100 else f"{mib:.0f} MiB"


def _ratio(value: float | None, limit: float | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.2f}×"
    return f"**{text}** ✗" if limit is not None and value > limit else text


def _display_name(m: Measurement) -> str:
    if m.name == BASELINE:
        return f"{BASELINE} — baseline"
    return f"{m.name} †" if m.target == "multilabel" and m.name != BCE_BASELINE else m.name


def misses(result: SizeResult, name: str) -> list[str]:
    """Which targets ``name`` misses at this size ("time", "memory")."""
    out = []
    if result.time_ratio(name) > TIME_TARGET:
        out.append("time")
    mem = result.memory_ratio(name)
    if mem is not None and mem > MEMORY_TARGET:
        out.append("memory")
    return out


def markdown_table(results: Sequence[SizeResult]) -> str:
    """One table for one flush_denormal setting; columns per size, rows per loss."""
    header = ["loss", "targets"]
    for r in results:
        header += [f"time {r.n}×{r.c}", f"peak mem {r.n}×{r.c}"]
    header.append(f"within {TIME_TARGET:g}× time / {MEMORY_TARGET:g}× mem")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    for name, m in results[0].measurements.items():
        targets = "multilabel, multi-hot float" if m.target == "multilabel" else m.target
        row = [_display_name(m), targets]
        missed: list[str] = []
        for r in results:
            mr = r.measurements[name]
            if name == BASELINE:  # the absolute baseline numbers
                row += [_ms(mr.median_s), _mib(mr.peak_bytes)]
                continue
            limits = (None, None) if is_reference_row(name) else (TIME_TARGET, MEMORY_TARGET)
            row += [
                f"{_ratio(r.time_ratio(name), limits[0])} ({_ms(mr.median_s)})",
                f"{_ratio(r.memory_ratio(name), limits[1])} ({_mib(mr.peak_bytes)})",
            ]
            missed += [f"{what} @ {r.n}×{r.c}" for what in misses(r, name)]
        if is_reference_row(name):
            row.append("—")
        else:
            row.append("yes" if not missed else "**no**: " + ", ".join(missed))
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    for name, m in results[0].measurements.items():
        if m.target != "multilabel" or name == BCE_BASELINE:
            continue
        parts = [
            f"{r.time_ratio(name, BCE_BASELINE):.2f}× time, "
            f"{_ratio(r.memory_ratio(name, BCE_BASELINE))} memory at {r.n}×{r.c}"
            for r in results
        ]
        lines.append(f"{name} against {BCE_BASELINE}: " + "; ".join(parts))
    for r in results:
        base = sorted(r.measurements[BASELINE].times_s)
        q1, _, q3 = statistics.quantiles(base, n=4) if len(base) > 1 else (base[0],) * 3
        lines.append(
            f"baseline spread at {r.n}×{r.c}: {len(base)} rounds, min {_ms(base[0])}, "
            f"quartiles {_ms(q1)}–{_ms(q3)}, max {_ms(base[-1])}"
        )
    return "\n".join(lines)


def to_json(results: Sequence[SizeResult]) -> list[dict[str, object]]:
    out = []
    for r in results:
        rows = []
        for name, m in r.measurements.items():
            row = asdict(m)
            row.update(
                median_s=m.median_s,
                time_ratio=r.time_ratio(name),
                memory_ratio=r.memory_ratio(name),
                time_ratio_vs_unscaled_ce=r.time_ratio(name, UNSCALED_BASELINE),
                memory_ratio_vs_unscaled_ce=r.memory_ratio(name, UNSCALED_BASELINE),
                misses=misses(r, name),
            )
            rows.append(row)
        out.append({"n": r.n, "c": r.c, "flush_denormal": r.flush_denormal, "rows": rows})
    return out


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_size(text: str) -> tuple[int, int]:
    try:
        n, c = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 1024x1000, got {text!r}") from None
    return n, c


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small size only, fewer repeats")
    parser.add_argument(
        "--sizes",
        type=lambda s: [parse_size(part) for part in s.split(",")],
        help="comma-separated NxC sizes (default: 1024x1000,256x100000)",
    )
    parser.add_argument("--losses", help="comma-separated registry names (default: all)")
    parser.add_argument(
        "--repeats",
        type=int,
        help="exact number of timed rounds per size and setting (default: at least 5, and more, "
        "up to 30, while that size's timing takes < 10 s; --quick: at least 3, < 2 s)",
    )
    parser.add_argument(
        "--warmup", type=int, help="warm-up rounds per size and setting (default 2; quick 1)"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)

    args.sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 2)
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error("--repeats must be >= 1")
        args.schedule = Schedule(warmup, args.repeats, args.repeats, 0.0)
    elif args.quick:
        args.schedule = Schedule(warmup, min_rounds=3, max_rounds=30, budget_s=2.0)
    else:
        args.schedule = Schedule(warmup, min_rounds=5, max_rounds=30, budget_s=10.0)
    available = lt.list_losses()
    args.losses = args.losses.split(",") if args.losses else available
    unknown = sorted(set(args.losses) - set(available))
    if unknown:
        parser.error(f"unknown losses {unknown}; registered: {available}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()

    memory_failures = check_memory_method()
    measure_memory = not memory_failures
    print(f"torch {torch.__version__}, Python {platform.python_version()}, {platform.platform()}")
    print(f"threads: {torch.get_num_threads()} (torch.get_num_threads); CPUs: {os.cpu_count()}")
    print(f"CPU: {cpu_model()}")
    print(f"load average at start: {load_average()}")
    print(
        f"timing: {args.schedule.describe()}; each round runs every case once, shuffled, "
        "each right after a baseline step"
    )
    if measure_memory:
        print(f"peak memory: {MEMORY_METHOD}; sanity check passed")
    else:
        print("peak memory: NOT MEASURED — the profiler sanity check failed:")
        for failure in memory_failures:
            print(f"  {failure}")

    results: list[SizeResult] = []
    for n, c in args.sizes:
        results += run_size(n, c, args.losses, args.schedule, measure_memory)

    for flush in (False, True):
        print(f"\n### torch.set_flush_denormal({flush})\n")
        print(markdown_table([r for r in results if r.flush_denormal == flush]))
    print(
        f"\nRatios are relative to the baseline {BASELINE} (z = uniform(−1, 1) cosine logits, "
        f"×{LOGIT_SCALE:g}); its row gives the absolute median time and peak memory. Every loss "
        f"runs on the unscaled z. Peak memory counts bytes allocated during one forward+backward "
        f"(the logits gradient included, the inputs excluded) and is measured once per size, "
        f"with flush_denormal off. ✗ marks a miss of the {TIME_TARGET:g}× time / "
        f"{MEMORY_TARGET:g}× memory targets.\n"
        "Time ratios are medians of paired ratios (each loss step timed right after a "
        "baseline step).\n"
        f"† multi-label loss, called with (N, C) multi-hot float targets (about "
        f"{LABELS_PER_SAMPLE:g} positives per row, long-tailed label frequencies), the same "
        f"targets as the {BCE_BASELINE} row, against which each is also compared."
    )
    elapsed = time.perf_counter() - start
    print(f"\nload average at end: {load_average()}; total wall time: {elapsed:.1f} s")

    if args.json:
        payload = {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": cpu_model(),
            "memory_method": MEMORY_METHOD if measure_memory else None,
            "memory_check_failures": memory_failures,
            "baseline": BASELINE,
            "logit_scale": LOGIT_SCALE,
            "schedule": asdict(args.schedule),
            "targets": {"time": TIME_TARGET, "memory": MEMORY_TARGET},
            "wall_time_s": elapsed,
            "results": to_json(results),
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2)
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

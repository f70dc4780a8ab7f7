"""Keep the README's results blocks equal to the committed reports they quote.

The README quotes generated tables between markers (``<!-- NAME:begin -->`` ...
``<!-- NAME:end -->``); each block is cut from the ``report.md`` of a committed results folder
(which ``longtail report FOLDER`` writes from the records), never typed by hand:

* ``table1-cpu``: from ``results/table1-fashion-mnist-cpu/report.md``, the Table 1 caption and
  table and every per-setting claims table; with it the README's status sentence ("Status at
  this commit: N of 108 runs (...)"), counted from the folder's records.
* ``mm-ablation-cpu`` (when the README has its markers): from
  ``results/mm-ablation-fashion-mnist-cpu/report.md``, the β × δ⁻ table with its caption.
* ``multilabel-cpu`` (when the README has its markers): from
  ``results/multilabel-fashion-mnist-mosaic-lt/report.md``, the benchmark's tables (one per
  recipe: 20 and 40 epochs) and the table of the claims at both lengths.

``tests/test_committed_results.py`` runs :func:`check` (and regenerates every committed report
from its records), so a README number that its records do not give fails the tests.

Usage: ``python scripts/readme_results.py`` rewrites the blocks (after ``longtail report``);
``python scripts/readme_results.py --check`` exits 1 naming each block that differs.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
TABLE1 = ROOT / "results" / "table1-fashion-mnist-cpu"
MULTILABEL = ROOT / "results" / "multilabel-fashion-mnist-mosaic-lt"
ABLATION = ROOT / "results" / "mm-ablation-fashion-mnist-cpu"

#: The grid of issue 10: 7 methods x 3 seeds and 6 methods x 1 seed on each of 4 settings.
TABLE1_SETTINGS = {
    "exp100": "long-tailed 100",
    "exp10": "long-tailed 10",
    "step100": "step 100",
    "step10": "step 10",
}
TABLE1_GRID = (7 * 3 + 6) * len(TABLE1_SETTINGS)
_RECORD = re.compile(r"^fashion-mnist_(?P<setting>[a-z]+\d+)_(?P<method>[a-z0-9-]+)_s\d+\.json$")
_STATUS = re.compile(r"\*\*Status at this commit: \d+ of \d+ runs \([^)]*\);")


def _between(text: str, start: str, stop: str | None) -> str:
    """The lines of ``text`` from the first starting with ``start`` to before the next starting
    with ``stop`` (``None``, or no such line: to the end)."""
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    ends = (i for i in range(first + 1, len(lines)) if stop and lines[i].startswith(stop))
    return "\n".join(lines[first : next(ends, len(lines))]).strip()


def table1_block(report: str) -> str:
    """The README's ``table1-cpu`` block from a Table 1 ``report.md``."""
    table = _between(report, "**Table 1.**", "**Tail view,")
    claims = _between(report, "**Claims, ", "## ")
    return f"{table}\n\n{claims}"


def ablation_block(report: str) -> str:
    """The README's ``mm-ablation-cpu`` block from an MM ablation ``report.md``."""
    return _between(report, "**MM ablation, ", "![")


def multilabel_block(report: str) -> str:
    """The README's ``multilabel-cpu`` block from a multi-label benchmark's ``report.md``."""
    tables = _between(report, "**Multi-label, ", "![")
    lengths = _between(report, "### Do the claims hold at twice the length?", "## ")
    lengths = lengths.split("\n", 1)[1].strip()  # without the report's heading
    return f"{tables}\n\n{lengths}"


def table1_status(folder: Path) -> str:
    """The status sentence's counts: runs of the grid, and per setting, from the record files."""
    per = Counter()
    for path in folder.glob("*.json"):
        m = _RECORD.match(path.name)
        if m and m.group("setting") in TABLE1_SETTINGS:
            per[m.group("setting")] += 1
    parts = ", ".join(f"{per[s]} on {title}" for s, title in TABLE1_SETTINGS.items())
    return f"**Status at this commit: {sum(per.values())} of {TABLE1_GRID} runs ({parts});"


def _replace_block(readme: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if readme.count(begin) != 1 or readme.count(end) != 1:
        raise SystemExit(f"README.md: expected one {begin} and one {end}")
    head, rest = readme.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{body}\n{end}{tail}"


def expected_readme(readme: str, table1: Path = TABLE1, multilabel: Path = MULTILABEL) -> str:
    """``readme`` with every block and status sentence as the committed reports give them."""
    report = (table1 / "report.md").read_text(encoding="utf-8")
    out = _replace_block(readme, "table1-cpu", table1_block(report))
    if "<!-- mm-ablation-cpu:begin -->" in out:
        report = (ABLATION / "report.md").read_text(encoding="utf-8")
        out = _replace_block(out, "mm-ablation-cpu", ablation_block(report))
    if "<!-- multilabel-cpu:begin -->" in out:
        report = (multilabel / "report.md").read_text(encoding="utf-8")
        out = _replace_block(out, "multilabel-cpu", multilabel_block(report))
    if len(_STATUS.findall(out)) != 1:
        raise SystemExit("README.md: expected one 'Status at this commit: N of M runs (...);'")
    return _STATUS.sub(lambda _: table1_status(table1), out)


def check(readme_path: Path = README, table1: Path = TABLE1) -> list[str]:
    """The README's lines that differ from :func:`expected_readme` (empty: it is current)."""
    readme = readme_path.read_text(encoding="utf-8")
    want = expected_readme(readme, table1)
    if want == readme:
        return []
    have_lines, want_lines = readme.splitlines(), want.splitlines()
    return [
        f"line {i + 1}: README has {a!r}, the reports give {b!r}"
        for i, (a, b) in enumerate(zip(have_lines, want_lines, strict=False))
        if a != b
    ] or ["README.md: the results blocks differ in length from the reports'"]


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        problems = check()
        for line in problems:
            print(line)
        return 1 if problems else 0
    if argv:
        print(__doc__)
        return 2
    readme = README.read_text(encoding="utf-8")
    README.write_text(expected_readme(readme), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

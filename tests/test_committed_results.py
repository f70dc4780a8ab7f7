"""The committed results are what their records give.

Every ``results/*/report.md`` must be what ``longtail report`` writes from the records beside it
today (a record added or changed without regenerating the report, or a report edited by hand,
fails here), and the README's results blocks must be cut from those reports
(``scripts/readme_results.py``).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from longtail.bench.report import write_report

ROOT = Path(__file__).resolve().parents[1]
REPORTS = sorted(p.parent for p in (ROOT / "results").glob("*/report.md"))


def _script():
    spec = importlib.util.spec_from_file_location(
        "readme_results", ROOT / "scripts" / "readme_results.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_there_are_committed_reports():
    names = {p.name for p in REPORTS}
    assert {"table1-fashion-mnist-cpu", "multilabel-fashion-mnist-mosaic-lt"} <= names


@pytest.mark.parametrize("folder", REPORTS, ids=[p.name for p in REPORTS])
def test_committed_report_is_regenerated_from_its_records(folder, tmp_path):
    pytest.importorskip("matplotlib")  # the committed reports link their plots
    written = write_report(folder, out=tmp_path)
    assert tmp_path / "report.md" in written
    # the report names the folder as given: give it the committed path, relative to the root
    rel = folder.relative_to(ROOT)
    fresh = (tmp_path / "report.md").read_text(encoding="utf-8").replace(str(folder), str(rel))
    committed = (folder / "report.md").read_text(encoding="utf-8")
    assert fresh == committed, f"{rel}/report.md is stale: run `longtail report {rel}`"
    for name in ("claims.json", "multilabel_claims.json"):
        if (tmp_path / name).exists() or (folder / name).exists():
            assert json.loads((tmp_path / name).read_text()) == json.loads(
                (folder / name).read_text()
            ), f"{rel}/{name} is stale"


def test_readme_results_blocks_are_cut_from_the_reports():
    problems = _script().check()
    assert not problems, "run `python scripts/readme_results.py`:\n" + "\n".join(problems[:5])


def test_a_readme_number_the_records_do_not_give_is_caught(tmp_path):
    script = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- table1-cpu:begin -->")[1].split("<!-- table1-cpu:end -->")[0]
    row = next(line for line in block.splitlines() if line.startswith("| ERM |"))
    cell = row.split("|")[2]
    digit = next(ch for ch in cell if ch.isdigit())
    edited = row.replace(cell, cell.replace(digit, str((int(digit) + 1) % 10), 1), 1)
    bad = tmp_path / "README.md"
    bad.write_text(readme.replace(row, edited, 1), encoding="utf-8")
    problems = script.check(bad)
    assert len(problems) == 1 and "| ERM |" in problems[0]


def test_the_status_sentence_counts_the_record_files(tmp_path):
    script = _script()
    folder = tmp_path / "t1"
    shutil.copytree(script.TABLE1, folder)
    records = sorted(folder.glob("fashion-mnist_exp100_*.json"))
    records[0].unlink()  # a run fewer than the README says
    readme = tmp_path / "README.md"
    shutil.copy(ROOT / "README.md", readme)
    problems = script.check(readme, folder)
    assert len(problems) == 1 and "Status at this commit" in problems[0]
    have = script.table1_status(script.TABLE1)
    fewer = script.table1_status(folder)
    assert int(have.split(": ")[1].split()[0]) == int(fewer.split(": ")[1].split()[0]) + 1


def _an_edit_of_the_block_is_caught(tmp_path, name: str, block: str, old: str, new: str):
    """The README (given the block's markers if it lacks them) passes the check, and fails it,
    on that line alone, once ``old`` in the block reads ``new``."""
    script = _script()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    if f"<!-- {name}:begin -->" not in readme:
        readme += f"\n<!-- {name}:begin -->\n{block}\n<!-- {name}:end -->\n"
    path = tmp_path / "README.md"
    path.write_text(readme, encoding="utf-8")
    assert script.check(path) == []
    path.write_text(readme.replace(old, new, 1), encoding="utf-8")
    problems = script.check(path)
    assert len(problems) == 1 and new in problems[0]


def test_the_multilabel_block_is_checked_once_the_readme_has_it(tmp_path):
    """The multi-label benchmark's block (its tables at both lengths and the claims at both) is
    cut from its report too, once the README carries its markers."""
    script = _script()
    block = script.multilabel_block((script.MULTILABEL / "report.md").read_text("utf-8"))
    assert "(recipe a)" in block and "(recipe b)" in block
    assert "| Claim | Metric |" in block and "![" not in block and "###" not in block
    _an_edit_of_the_block_is_caught(
        tmp_path, "multilabel-cpu", block, "| BCE |", "| BCE (edited) |"
    )


def test_the_ablation_block_is_checked_once_the_readme_has_it(tmp_path):
    """The MM ablation's β × δ⁻ table is cut from its report too, once the README has markers."""
    script = _script()
    block = script.ablation_block((script.ABLATION / "report.md").read_text("utf-8"))
    assert block.startswith("**MM ablation, ") and "| β \\ δ⁻ |" in block and "![" not in block
    row = next(line for line in block.splitlines() if line.startswith("| 1.5 |"))
    edited = row.replace("| 1.5 |", "| 1.6 |")
    _an_edit_of_the_block_is_caught(tmp_path, "mm-ablation-cpu", block, row, edited)

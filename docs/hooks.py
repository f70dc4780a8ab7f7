"""MkDocs hooks (``hooks:`` in mkdocs.yml): the pages that are generated, never committed.

* ``losses/``: one page per registered loss, written from the loss registry
  (:mod:`longtail.losses._registry`): its formula line, family, paper, defaults (the function's
  signature), what it needs and what it refuses, its row of the committed speed benchmark
  (``benchmarks/results_losses.md``) and its docstrings (mkdocstrings). A new loss gets a page
  without an edit here; ``tests/test_docs.py`` checks that every registered loss has one.
* The repository files the hand-written pages link to (``../results/*/report.md`` with their
  plots, ``../benchmarks/*.py``, ``../src/...``) are added to the site under their repository
  path, and such links are rewritten to point at them, so the site holds what it cites and
  ``mkdocs build --strict`` checks those links like any other.

The page generators are plain functions (:func:`loss_pages`), so the tests call them without
MkDocs.
"""

from __future__ import annotations

import inspect
import logging
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BENCH_LOSSES = ROOT / "benchmarks" / "results_losses.md"
#: the nav entry that the hook expands into the generated loss pages, grouped by family
LOSSES_INDEX = "losses/index.md"
#: the nav entry that the hook expands into the reports and benchmark outputs the pages cite
RESULTS_INDEX = "results/index.md"

log = logging.getLogger("mkdocs.hooks.longtail")

# ----------------------------------------------------------------------------------------------
# loss pages


def _bench_rows(path: Path = BENCH_LOSSES) -> tuple[list[str], dict[str, list[str]], dict]:
    """The first table of the committed loss benchmark (``torch.set_flush_denormal(False)``).

    Returns:
        (header cells, {loss name: row cells}, {"machine": the file's first lines, "baseline":
        the baseline row's cells, "bce": {loss name: its line against BCE}}); empty when the
        file is not there.
    """
    if not path.is_file():
        return [], {}, {}
    lines = path.read_text(encoding="utf-8").splitlines()
    machine = [ln for ln in lines[:3] if ln.strip()]
    header: list[str] = []
    rows: dict[str, list[str]] = {}
    bce: dict[str, str] = {}
    baseline: list[str] = []
    tables = 0
    in_table = False
    for line in lines:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not in_table:
                in_table, tables = True, tables + 1
                if tables == 1:
                    header = cells
                continue
            if tables != 1 or set("".join(cells)) <= set("-: "):
                continue
            name = cells[0].replace("†", "").strip()
            if "baseline" in name:
                baseline = cells
            else:
                rows[name] = cells
        else:
            in_table = False
            m = re.match(r"([a-z0-9-]+) against (F\.binary_cross_entropy_with_logits.*)", line)
            if m and tables == 1:
                bce[m.group(1)] = m.group(2)
    return header, rows, {"machine": machine, "baseline": baseline, "bce": bce}


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|")


def _call(function: Any, defaults: dict[str, Any]) -> str:
    """``name(logits, target[, class_counts], k=v, ...)``: a call with every default spelled out."""
    positional = [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
    ]
    args = positional + [f"{k}={v!r}" for k, v in defaults.items()]
    return f"{function.__name__}({', '.join(args)})"


def _loss_page(info: Any, bench: tuple[list[str], dict[str, list[str]], dict]) -> str:
    from longtail.losses import FAMILIES, TARGETS

    fn, cls = info.function, info.cls
    out = [f"# `{info.name}`", ""]
    counts = (
        "required: the training class counts, as `class_counts` (the third argument)"
        if info.needs_counts
        else "not used (refused: `create_loss` raises if given them)"
    )
    rows = [
        ("family", f"[{info.family}](index.md#{info.family}): {FAMILIES[info.family]}"),
        ("paper", info.paper if info.paper.strip() not in ("-", "—") else "none (a standard loss)"),
        ("class counts", counts),
        ("target", f"`{info.target}`: {TARGETS[info.target]}"),
        (
            "reduction",
            '`"mean"`, `"sum"`, `"none"` (one value per sample)'
            if info.per_sample
            else '`"mean"` or `"sum"` only: a batch-level quantity, not a training method',
        ),
        ("`torch.compile`", "gives the eager result" if info.compiles else info.compile_note),
    ]
    if info.stop_gradient:
        rows.append(("held constant in the backward", info.stop_gradient))
    if info.uncertain:
        rows.append(
            (
                "uncertain defaults",
                ", ".join(f"`{k}`" for k in info.uncertain)
                + " (the paper gives none or several; the docstring says which)",
            )
        )
    out += ["| | |", "|---|---|"]
    out += [f"| {k} | {_md_cell(v)} |" for k, v in rows]

    out += [
        "",
        "## Formula",
        "",
        "The registry's line (the full statement is the docstring below):",
    ]
    out += ["", f"> {info.description}", ""]

    out += ["## Defaults", ""]
    if info.defaults:
        out += ["| hyper-parameter | default |", "|---|---|"]
        for k, v in info.defaults.items():
            mark = " (uncertain)" if k in info.uncertain else ""
            out.append(f"| `{k}` | `{v!r}`{mark} |")
    else:
        out.append("No hyper-parameters beyond the shared ones.")
    counts_arg = "class_counts, " if info.needs_counts else ""
    kwargs = ", ".join(f"{k}={v!r}" for k, v in info.defaults.items())
    create = f'lt.create_loss("{info.name}", {counts_arg}{kwargs})'.replace(", )", ")")
    out += [
        "",
        "```python",
        "import longtail as lt",
        "",
        f"criterion = {create}",
        f"loss = lt.functional.{_call(fn, dict(info.defaults))}",
        "```",
        "",
    ]
    if info.single_label:
        out += [f"A training method of its own: `longtail train --method loss:{info.name}`.", ""]

    header, bench_rows, extra = bench
    out += ["## Speed", ""]
    if info.name in bench_rows:
        out += [
            "One forward and backward against `F.cross_entropy` in the same process (ratios of "
            "paired steps; peak memory from the profiler), from the latest full run of "
            "`python benchmarks/bench_losses.py`, committed as "
            "[`benchmarks/results_losses.md`](../benchmarks/results_losses.md) "
            "(`torch.set_flush_denormal(False)`):",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "---|" * len(header),
        ]
        if extra.get("baseline"):
            out.append("| " + " | ".join(extra["baseline"]) + " |")
        out.append("| " + " | ".join(bench_rows[info.name]) + " |")
        if info.name in extra.get("bce", {}):
            base, _, ratios = extra["bce"][info.name].partition(": ")
            out += ["", f"Against `{base}`, the same kind of loss: {ratios}."]
        if extra.get("machine"):
            out += ["", "Measured on: " + "; ".join(f"`{m}`" for m in extra["machine"]) + "."]
    else:
        out.append(
            "Not in the latest full run of `python benchmarks/bench_losses.py` "
            "([`benchmarks/results_losses.md`](../benchmarks/results_losses.md)); "
            f"`python benchmarks/bench_losses.py --losses {info.name}` measures it."
        )
    out += [
        "",
        "## API",
        "",
        f"::: {fn.__module__}.{fn.__qualname__}",
        "",
        f"::: {cls.__module__}.{cls.__qualname__}",
        "",
    ]
    return "\n".join(out)


def _index_page(infos: list[Any]) -> str:
    from longtail.losses import FAMILIES

    out = [
        "# Losses",
        "",
        f"The {len(infos)} registered losses, one page each, generated from the registry "
        "(`longtail losses` prints the same list; `longtail losses --json` has every field). "
        "Each is a function (`lt.functional.NAME_loss`) and a module "
        '(`lt.create_loss("name", ...)`) with the same defaults; the shared arguments '
        '`weight=None, ignore_index=-100, reduction="mean"` come last, keyword-only. '
        "*counts*: the loss takes the training class counts.",
        "",
    ]
    for family, meaning in FAMILIES.items():
        members = [i for i in infos if i.family == family]
        if not members:
            continue
        out += [f"## {family}", "", f"{meaning[0].upper()}{meaning[1:]}.", ""]
        out += ["| loss | counts | formula | paper |", "|---|---|---|---|"]
        for i in members:
            out.append(
                f"| [`{i.name}`]({i.name}.md) | {'yes' if i.needs_counts else ''} | "
                f"{_md_cell(i.description)} | {_md_cell(i.paper)} |"
            )
        out.append("")
    return "\n".join(out)


def loss_pages() -> dict[str, str]:
    """Every generated loss page, by its path in the site (``losses/<name>.md``), and the index
    (:data:`LOSSES_INDEX`)."""
    from longtail.losses import get_loss_info, list_losses

    infos = [get_loss_info(n) for n in list_losses()]
    bench = _bench_rows()
    pages = {LOSSES_INDEX: _index_page(infos)}
    for info in infos:
        pages[f"losses/{info.name}.md"] = _loss_page(info, bench)
    return pages


def loss_nav() -> list[Any]:
    """The nav of the loss pages: the index, then one section per family."""
    from longtail.losses import FAMILIES, get_loss_info, list_losses

    nav: list[Any] = [LOSSES_INDEX]
    for family in FAMILIES:
        names = list_losses(family=family)
        if names:
            nav.append({family: [{n: f"losses/{get_loss_info(n).name}.md"} for n in names]})
    return nav


# ----------------------------------------------------------------------------------------------
# links out of docs/ into the repository

_LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))")
_SKIP = ("http://", "https://", "mailto:", "#", "/")


def _relative_links(markdown: str) -> Iterator[str]:
    for m in _LINK.finditer(markdown):
        if not m.group(2).startswith(_SKIP):
            yield m.group(2)


def _site_uri(path: Path) -> str | None:
    """Where a repository file lives in the site: docs/ files at their docs path, the rest at
    their repository path; None outside the repository."""
    try:
        rel = path.resolve().relative_to(ROOT)
    except ValueError:
        return None
    if rel.parts and rel.parts[0] == "docs":
        return Path(*rel.parts[1:]).as_posix()
    return rel.as_posix()


def repo_files_linked(start: list[Path]) -> dict[str, Path]:
    """The repository files outside docs/ that the pages ``start`` link to, and, for the
    markdown ones, what they link to in turn: {site path: file}."""
    found: dict[str, Path] = {}
    todo = list(start)
    seen: set[Path] = set()
    while todo:
        page = todo.pop()
        if page in seen or not page.is_file():
            continue
        seen.add(page)
        for link in _relative_links(page.read_text(encoding="utf-8")):
            target = (page.parent / link.split("#")[0]).resolve()
            uri = _site_uri(target)
            if uri is None or not target.is_file() or target.is_relative_to(DOCS):
                continue
            found[uri] = target
            if target.suffix == ".md":
                todo.append(target)
    return found


def _linked_from_docs() -> dict[str, Path]:
    """The repository files outside docs/ that the hand-written pages link to, and the committed
    loss benchmark (linked from every loss page)."""
    linked = repo_files_linked(sorted(DOCS.rglob("*.md")))
    linked[_site_uri(BENCH_LOSSES)] = BENCH_LOSSES  # type: ignore[index]
    return dict(sorted(linked.items()))


def _report_title(uri: str) -> str:
    """A nav title for a linked markdown file: its folder for a results report
    (``results/dir-diamonds/report.md``: ``dir-diamonds``), else its path."""
    parts = uri.split("/")
    if parts[0] == "results" and len(parts) == 3 and parts[2] == "report.md":
        return parts[1]
    return uri


def results_pages(linked: dict[str, Path]) -> dict[str, str]:
    """The generated index of the linked reports (:data:`RESULTS_INDEX`)."""
    reports = [u for u in linked if u.endswith(".md")]
    out = [
        "# Results and benchmarks",
        "",
        "The committed reports and benchmark outputs that these pages cite, as the repository "
        "holds them (`longtail report DIR` writes a folder's `report.md`; the benchmarks write "
        "`benchmarks/results_*.md`). What each one does and does not show is said where it is "
        "cited: the [guide](../guide.md), [preset selection](../preset-selection.md), "
        "[imbalanced regression](../dir.md).",
        "",
    ]
    out += [f"* [`{u}`]({posixpath.relpath(u, 'results')})" for u in reports]
    return {RESULTS_INDEX: "\n".join(out) + "\n"}


# ----------------------------------------------------------------------------------------------
# MkDocs events

_linked: dict[str, Path] = {}


def on_config(config: Any, **kwargs: Any) -> Any:
    """Expand the nav entries ``losses/index.md`` (the generated loss pages, by family) and
    ``results/index.md`` (the linked reports)."""
    _linked.clear()
    _linked.update(_linked_from_docs())
    reports = [{_report_title(u): u} for u in _linked if u.endswith(".md")]

    def expand(items: list[Any]) -> list[Any]:
        out = []
        for item in items:
            if isinstance(item, dict):
                (title, value), *_ = item.items()
                if value == LOSSES_INDEX:
                    item = {title: loss_nav()}
                elif value == RESULTS_INDEX:
                    item = {title: [RESULTS_INDEX, *reports]}
                elif isinstance(value, list):
                    item = {title: expand(value)}
            out.append(item)
        return out

    if config.get("nav"):
        config["nav"] = expand(config["nav"])
    return config


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """Add the generated pages and the repository files the pages link to."""
    from mkdocs.structure.files import File

    generated = {**loss_pages(), **results_pages(_linked)}
    for uri, content in generated.items():
        files.append(File.generated(config, uri, content=content))
    for uri in _linked:
        if files.get_file_from_path(uri) is None:
            files.append(
                File(
                    uri,
                    src_dir=str(ROOT),
                    dest_dir=config["site_dir"],
                    use_directory_urls=config["use_directory_urls"],
                )
            )
    log.info("generated %d pages; added %d repository files", len(generated), len(_linked))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """Point links that leave docs/ at the copies of their targets in the site."""
    src = page.file.abs_src_path
    if not src:
        return markdown
    here = Path(src).parent
    page_dir = posixpath.dirname(page.file.src_uri)

    def fix(m: re.Match[str]) -> str:
        link = m.group(2)
        if link.startswith(_SKIP):
            return m.group(0)
        path, _, anchor = link.partition("#")
        uri = _site_uri(here / path)
        if uri is None or files.get_file_from_path(uri) is None:
            return m.group(0)  # left for MkDocs to report
        new = posixpath.relpath(uri, page_dir or ".") + (f"#{anchor}" if anchor else "")
        return m.group(1) + new + m.group(3)

    return _LINK.sub(fix, markdown)

"""The documentation site's sources: generated loss pages, nav, API directives, docstring rewrite.

The full ``mkdocs build --strict`` takes about half a minute on a loaded 2-core machine, so it runs
in CI as ``make docs``, not here; these tests check what the build relies on, against sources
independent of the generator (the registry, the README's loss table, the benchmark file).
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

yaml = pytest.importorskip("yaml")  # installed with mkdocs (the docs extra)

import longtail as lt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_longtail_docs_{name}", DOCS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


hooks = _load("hooks")


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return hooks.loss_pages()


def _config() -> dict:
    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may use MkDocs' own tags (!ENV, !relative); none matter here
    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=Loader)


def _nav_paths(items) -> list[str]:
    out: list[str] = []
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            out += _nav_paths(value)
        elif not re.match(r"https?://", value):
            out.append(value)
    return out


def _readme_losses() -> list[str]:
    """The names in the README's loss table (kept equal to ``longtail losses --markdown`` by
    tests/test_readme.py): a list independent of the hook."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text.split("<!-- losses table")[1].split("<!-- end of losses table")[0]
    return re.findall(r"^\| `([a-z0-9-]+)` \|", table, re.M)


def test_every_registered_loss_has_a_page(pages):
    names = lt.list_losses()
    assert sorted(_readme_losses()) == names  # the hook's source agrees with the README's
    assert set(pages) == {hooks.LOSSES_INDEX} | {f"losses/{n}.md" for n in names}
    index = pages[hooks.LOSSES_INDEX]
    for name in names:
        assert f"[`{name}`]({name}.md)" in index, name


@pytest.mark.parametrize("name", lt.list_losses())
def test_a_loss_page_has_its_formula_defaults_paper_and_api(pages, name):
    info = lt.get_loss_info(name)
    page = pages[f"losses/{name}.md"]
    assert page.startswith(f"# `{name}`\n")
    assert info.description.strip() and f"> {info.description}" in page  # the formula line
    assert "## Formula" in page and "## Defaults" in page and "## Speed" in page
    assert info.family in page
    if info.paper.strip() not in ("-", "—"):
        assert info.paper in page
    for key, value in info.defaults.items():
        assert f"| `{key}` | `{value!r}`" in page, key
        assert f"{key}={value!r}" in page  # in the create_loss call
    fn, cls = info.function, info.cls
    assert f"::: {fn.__module__}.{fn.__qualname__}" in page
    assert f"::: {cls.__module__}.{cls.__qualname__}" in page
    assert getattr(importlib.import_module(fn.__module__), fn.__qualname__) is fn
    assert f'lt.create_loss("{name}"' in page
    assert ("class_counts" in page.split("```python")[1]) == info.needs_counts


def test_the_speed_row_is_the_committed_benchmark_row(pages):
    text = hooks.BENCH_LOSSES.read_text(encoding="utf-8")
    first_table = text.split("torch.set_flush_denormal(True)")[0]
    for name in lt.list_losses():
        rows = re.findall(rf"^\| {re.escape(name)}( †)? \|.*$", first_table, re.M)
        page = pages[f"losses/{name}.md"]
        if rows:
            line = re.search(rf"^\| {re.escape(name)}( †)? \|.*$", first_table, re.M).group(0)
            cells = [c.strip() for c in line.strip("| ").split("|")]
            assert "| " + " | ".join(cells) + " |" in page, name
        else:
            assert "Not in the latest full run" in page, name
    assert "| ldam | index |" in pages["losses/ldam.md"]  # the parse found the table at all


def test_the_nav_lists_existing_files_and_every_page():
    config = _config()
    paths = _nav_paths(config["nav"])
    generated = {hooks.LOSSES_INDEX, hooks.RESULTS_INDEX}
    missing = [p for p in paths if p not in generated and not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml's nav names files that are not in docs/: {missing}"
    assert len(paths) == len(set(paths))
    written = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert written <= set(paths), f"pages left out of the nav: {sorted(written - set(paths))}"
    assert config["hooks"] == ["docs/hooks.py"]
    assert config["strict"] is True


def test_the_expanded_nav_holds_every_loss_page_once():
    nav = hooks.loss_nav()
    paths = _nav_paths(nav)
    assert paths[0] == hooks.LOSSES_INDEX
    assert sorted(paths[1:]) == sorted(f"losses/{n}.md" for n in lt.list_losses())


def test_api_directives_name_importable_objects():
    targets = []
    for page in sorted((DOCS / "api").glob("*.md")):
        targets += re.findall(r"^::: ([\w.]+)$", page.read_text(encoding="utf-8"), re.M)
    assert {"longtail.losses._registry", "longtail.weighting", "longtail.metrics"} <= set(targets)
    for target in targets:
        module, _, attr = target, "", None
        try:
            importlib.import_module(module)
        except ModuleNotFoundError:
            module, _, attr = target.rpartition(".")
            assert hasattr(importlib.import_module(module), attr), target


def test_links_out_of_docs_are_collected():
    linked = hooks._linked_from_docs()
    expected = set()
    for page in DOCS.rglob("*.md"):
        for link in re.findall(r"\]\((\.\./[^)#\s]+)", page.read_text(encoding="utf-8")):
            target = (page.parent / link).resolve()
            if target.is_relative_to(DOCS):
                continue  # a page of the site (the generated ones are not files)
            assert target.is_file(), f"{page.name} links to {link}, which does not exist"
            expected.add(target.relative_to(ROOT).as_posix())
    assert expected <= set(linked)
    assert "benchmarks/results_losses.md" in linked
    # the plots a linked report shows come with it
    assert "results/preset-selection/selection_curves_fashion-mnist_exp100.png" in linked


def test_docstring_rewrite():
    ext = _load("griffe_markdown")
    assert doctest.testmod(ext).failed == 0
    text = "\n".join(
        [
            "Use :func:`~longtail.metrics.balanced_accuracy` or :class:`lt.NormedLinear`.",
            "",
            ".. math::",
            "",
            "    a = b",
            "    + c",
            "",
            "Example:",
            "    >>> [1, 2]",
            "    [1, 2]",
            "",
            "```python",
            ">>> untouched",
            "```",
        ]
    )
    assert ext.convert(text).split("\n") == [
        "Use `balanced_accuracy` or `lt.NormedLinear`.",
        "",
        "$$",
        "a = b",
        "+ c",
        "$$",
        "",
        "Example:",
        "    ```pycon",
        "    >>> [1, 2]",
        "    [1, 2]",
        "    ```",
        "",
        "```python",
        ">>> untouched",
        "```",
    ]

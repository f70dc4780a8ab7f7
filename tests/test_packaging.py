"""Cheap invariants of the package's metadata (pyproject.toml against the code).

The build itself (sdist and wheel, ``twine check``, the wheel installed into a fresh venv and
run) is ``make package-check``, in CI; these tests read files only.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "longtail"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]
EXTRAS: dict[str, list[str]] = PROJECT["optional-dependencies"]

#: distribution name -> the module it is imported as, where they differ
IMPORT_NAME = {"pillow": "PIL", "scikit-learn": "sklearn"}
#: requirements the code never imports by name, and the import that needs them at run time
NEEDED_BY = {
    "accelerate": "transformers",  # transformers' Trainer refuses to run without it
    "tensorboard": "torch.utils.tensorboard",  # torch's SummaryWriter imports it
}
#: optional imports that no extra installs, and why
NO_EXTRA: dict[str, str] = {}
#: dev requirements that are tools run by the Makefile, not imported by the tests
TOOLS = {"ruff": "make lint", "build": "make package-check", "twine": "make package-check"}


def _name(requirement: str) -> str:
    """The distribution name of a requirement string (``"mkdocstrings[python]>=0.24"``)."""
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower()


def _module(requirement: str) -> str:
    name = _name(requirement)
    return IMPORT_NAME.get(name, name.replace("-", "_"))


def _imports(folder: Path) -> set[str]:
    """Every absolute import under ``folder``, as dotted names (``torch.utils.tensorboard``),
    with the modules given to ``pytest.importorskip``."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "importorskip"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


def _top(names: set[str]) -> set[str]:
    return {n.split(".")[0] for n in names}


SRC_IMPORTS = _imports(SRC)


def test_version_has_one_source():
    assert "version" not in PROJECT, "pyproject.toml must not repeat the version"
    assert "version" in PROJECT["dynamic"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "longtail.__version__"}
    assigned = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
            ):
                assigned.append((path.relative_to(SRC).as_posix(), ast.literal_eval(node.value)))
    assert len(assigned) == 1 and assigned[0][0] == "__init__.py", assigned
    # PEP 440 public version (N.N.N, optional pre/post/dev release)
    assert re.fullmatch(r"\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?", assigned[0][1])


def test_py_typed_is_shipped():
    assert (SRC / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["longtail"]


def test_console_script_exists():
    assert PROJECT["scripts"] == {"longtail": "longtail.cli:main"}
    tree = ast.parse((SRC / "cli.py").read_text(encoding="utf-8"))
    assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


@pytest.mark.parametrize("extra", sorted(set(EXTRAS) - {"dev", "docs"}), ids=lambda e: f"extra-{e}")
def test_extras_list_only_what_the_code_imports(extra):
    top = _top(SRC_IMPORTS)
    for requirement in EXTRAS[extra]:
        name, module = _name(requirement), _module(requirement)
        if name in NEEDED_BY:
            needer = NEEDED_BY[name]
            assert needer in SRC_IMPORTS or needer in top, (
                f"extra {extra!r}: {name} is there for {needer}, which src/ no longer imports"
            )
        else:
            assert module in top, f"extra {extra!r}: src/ never imports {module} ({name})"


def test_dev_extra_lists_what_the_tests_import_or_the_makefile_runs():
    top = _top(_imports(ROOT / "tests"))
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for requirement in EXTRAS["dev"]:
        name, module = _name(requirement), _module(requirement)
        if name in TOOLS:
            assert re.search(rf"\b{re.escape(name)}\b", makefile), f"the Makefile never runs {name}"
        else:
            assert module in top, f"extra 'dev': tests/ never import {module} ({name})"


def test_docs_extra_lists_what_mkdocs_yml_uses():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    names = {_name(r) for r in EXTRAS["docs"]}
    assert names == {"mkdocs", "mkdocstrings", "mkdocs-material"}
    assert re.search(r"^\s+- mkdocstrings:", config, re.M)
    assert re.search(r"^\s+name: material$", config, re.M)
    assert "python:" in config  # the mkdocstrings[python] handler


def test_every_third_party_import_is_a_dependency_or_an_extra():
    core = {_module(r) for r in PROJECT["dependencies"]}
    optional = {_module(r) for reqs in EXTRAS.values() for r in reqs}
    third_party = _top(SRC_IMPORTS) - set(sys.stdlib_module_names) - {"longtail"}
    missing = sorted(third_party - core - optional - set(NO_EXTRA))
    assert not missing, f"src/ imports {missing}, which no dependency or extra installs"
    assert {"torch", "numpy"} <= core


def test_make_test_installs_every_extra():
    m = re.search(r"^TEST_EXTRAS \?= (\S+)$", (ROOT / "Makefile").read_text(), re.M)
    assert m is not None
    assert set(m.group(1).split(",")) == set(EXTRAS)


def test_the_license_is_an_spdx_expression():
    # PEP 639; a table ({text = ...}) is deprecated and setuptools stops building it in 2027
    assert isinstance(PROJECT["license"], str)
    requires = PYPROJECT["build-system"]["requires"]
    (setuptools,) = [r for r in requires if _name(r) == "setuptools"]
    minimum = re.search(r">=\s*(\d+)", setuptools)
    assert minimum is not None and int(minimum.group(1)) >= 77  # SPDX license support

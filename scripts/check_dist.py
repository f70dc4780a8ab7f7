"""Check the built sdist and wheel (``make package-check``, after ``python -m build``).

What ``twine check`` does not look at: that there is one wheel and one sdist of the version in
``src/longtail/__init__.py``; that the wheel holds every module of the package, ``py.typed`` and
the ``longtail`` command, and nothing from outside the package (tests, results, benchmarks); that
its metadata declares the dependencies and extras of ``pyproject.toml``; that the sdist holds what
a build from it needs.

Usage: ``python scripts/check_dist.py DIST_DIR``; exits 1 naming every problem.
"""

from __future__ import annotations

import ast
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the metadata is then not compared with pyproject
    tomllib = None  # type: ignore[assignment]

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "longtail"


def source_version() -> str:
    """``__version__`` as assigned in ``src/longtail/__init__.py`` (read, not imported)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise SystemExit("src/longtail/__init__.py assigns no __version__")


def check(dist: Path) -> list[str]:
    problems: list[str] = []
    version = source_version()
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        return [f"expected one wheel and one sdist in {dist}, found {wheels + sdists}"]
    wheel, sdist = wheels[0], sdists[0]
    for path in (wheel, sdist):
        if f"-{version}" not in path.name:
            problems.append(f"{path.name} is not version {version} (src/longtail/__init__.py)")

    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*.py")}
    modules = {m for m in modules if "__pycache__" not in m}
    for missing in sorted(modules - names):
        problems.append(f"the wheel lacks {missing}")
    if "longtail/py.typed" not in names:
        problems.append("the wheel lacks longtail/py.typed (PEP 561)")
    outside = sorted(n for n in names if not n.startswith(("longtail/", "longtail-")))
    if outside:
        problems.append(f"the wheel holds files outside the package: {outside[:5]}")

    info = f"longtail-{version}.dist-info"
    with zipfile.ZipFile(wheel) as zf:
        meta = Parser().parsestr(zf.read(f"{info}/METADATA").decode())
        entry_points = zf.read(f"{info}/entry_points.txt").decode()
    if "longtail = longtail.cli:main" not in entry_points:
        problems.append("the wheel does not install the `longtail` command (longtail.cli:main)")
    if tomllib is not None:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
        project = pyproject["project"]
        declared = set(project["optional-dependencies"])
        extras = set(meta.get_all("Provides-Extra") or [])
        if extras != declared:
            problems.append(
                f"the wheel's extras {sorted(extras)} are not pyproject's {sorted(declared)}"
            )
        requires = [r.replace(" ", "") for r in meta.get_all("Requires-Dist") or []]
        for dep in project["dependencies"]:
            if dep.replace(" ", "") not in requires:
                problems.append(f"the wheel does not require {dep}")
    if meta.get("Description-Content-Type") != "text/markdown":
        problems.append("the long description (README.md) is not declared as markdown")

    with tarfile.open(sdist) as tf:
        members = {m.split("/", 1)[1] for m in tf.getnames() if "/" in m}
    for needed in (
        "pyproject.toml",
        "README.md",
        "src/longtail/__init__.py",
        "src/longtail/py.typed",
    ):
        if needed not in members:
            problems.append(f"the sdist lacks {needed}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    problems = check(Path(argv[0]))
    for p in problems:
        print(f"check_dist: {p}", file=sys.stderr)
    if not problems:
        print(f"check_dist: the sdist and the wheel of longtail {source_version()} are complete")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""A Griffe extension for the API pages (mkdocs.yml, mkdocstrings ``extensions``): longtail's
reStructuredText habits inside Google-style docstrings, rendered as Markdown.

The docstrings are written for ``help()`` and ``pytest --doctest-modules`` first. Read as
Markdown they would go wrong in three ways, which this extension rewrites before Griffe parses a
docstring (the source is not changed):

* **Doctests** sit under ``Example:`` (which Griffe renders as an admonition of Markdown text,
  not as an examples section) or after the last section. As Markdown, ``>>>`` lines are nested
  block quotes, and ``[0.1, 0.2]`` or ``d["a"]["b"]`` in them read as link references, which
  ``mkdocs build --strict`` rejects. Every run of doctest lines (a ``>>>`` line, its ``...``
  continuations and its output, up to a blank line) is fenced as ```` ```pycon ````.
* **``.. math::``** blocks become ``$$ ... $$`` display math (``pymdownx.arithmatex``, drawn by
  MathJax).
* **Sphinx roles** (``:func:`~longtail.metrics.balanced_accuracy```) become inline code of the
  name as Sphinx would show it (``balanced_accuracy`` for a ``~`` target).
"""

from __future__ import annotations

import re
from typing import Any

from griffe import Extension, Object

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|obj|exc):`(~?)([^`]+)`")
_MATH = re.compile(r"^(\s*)\.\. math::\s*(.*)$")
_FENCE = ("```", "~~~")


def _role(m: re.Match[str]) -> str:
    name = m.group(2)
    return f"`{name.rsplit('.', 1)[-1] if m.group(1) else name}`"


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def convert(text: str) -> str:
    """``text`` with its doctests fenced, its ``.. math::`` blocks as ``$$`` and its Sphinx roles
    as inline code; fenced code is left alone.

    Example:
        >>> convert("See :func:`~a.b`.\\n  >>> 1 + 1\\n  2\\n\\nDone.").split("\\n")
        ['See `b`.', '  ```pycon', '  >>> 1 + 1', '  2', '  ```', '', 'Done.']
        >>> convert(".. math::\\n\\n    x^2\\n\\nText").split("\\n")
        ['$$', 'x^2', '$$', '', 'Text']
    """
    out: list[str] = []
    lines = text.split("\n")
    in_fence = False
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        if stripped.startswith(_FENCE):
            in_fence = not in_fence
        if in_fence:
            out.append(line)
            i += 1
            continue
        indent = line[: _indent(line)]
        if stripped.startswith(">>>"):
            out.append(f"{indent}```pycon")
            while i < len(lines) and lines[i].strip():
                out.append(lines[i])
                i += 1
            out.append(f"{indent}```")
            continue
        math = _MATH.match(line)
        if math:
            body = [math.group(2)] if math.group(2) else []
            i += 1
            # the directive's body: every following line indented deeper (blank lines inside)
            while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > len(indent)):
                if not lines[i].strip() and (
                    i + 1 >= len(lines)
                    or not lines[i + 1].strip()
                    or _indent(lines[i + 1]) <= len(indent)
                ):
                    break
                body.append(lines[i].strip())
                i += 1
            body = [b for b in body if b]
            out += [f"{indent}$$", *(f"{indent}{b}" for b in body), f"{indent}$$"]
            continue
        out.append(_ROLE.sub(_role, line))
        i += 1
    return "\n".join(out)


class DocstringMarkdown(Extension):
    """Rewrite every docstring with :func:`convert`."""

    def on_instance(self, *, obj: Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = convert(obj.docstring.value)

"""``python -m tools.gen_docs [--check]``: the reference tables written from the code (issue 11).

Three tables are copies of something the code holds; each is generated between two
marker lines, so the prose around it stays hand-written:

- README.md "Configuration": every ``Settings`` field (``src/openplatform/config.py``) with its
  variable, default, accepted values and description;
- docs/errors.md: the error table of ``src/openplatform/errors.py`` (SPEC §2);
- docs/events.md: every audit event of ``src/openplatform/events.py`` with its meaning.

Without ``--check`` the files are rewritten; with it nothing is written and the exit
status is 1 when a file differs (the names go to stderr). ``tests/test_generated_docs.py``
runs the check.
"""

from __future__ import annotations

import ast
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path

import annotated_types
from pydantic.fields import FieldInfo

from openplatform.config import Settings
from openplatform.errors import ERRORS

ROOT = Path(__file__).resolve().parents[1]
EVENTS_PY = ROOT / "src" / "openplatform" / "events.py"


def settings_table() -> str:
    """The README's table: one row per ``Settings`` field, in the order of config.py."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    rows = ["| variable | default | accepts | meaning |", "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        rows.append(
            f"| `{prefix}{name.upper()}` | {shown_default(field)} | {accepted(field)} | {_cell(field.description)} |"
        )
    return "\n".join(rows)


def shown_default(field: FieldInfo) -> str:
    extra = field.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("shown"), str):
        return str(extra["shown"])
    value = field.default
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"
    return f"`{value}`"


def accepted(field: FieldInfo) -> str:
    """What validation lets through, read from the annotation and its constraints."""
    kinds = [arg for arg in _flatten(field.annotation) if arg is not type(None)]
    if len(kinds) == 1 and typing.get_origin(kinds[0]) is typing.Literal:
        return " or ".join(f"`{value}`" for value in typing.get_args(kinds[0]))
    if kinds == [bool]:
        return "`true` or `false`"
    if kinds and all(kind in (int, float) for kind in kinds):
        return _range(field, "whole number" if kinds == [int] else "number")
    return "text"


def _flatten(annotation: object) -> list[object]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [arg for part in typing.get_args(annotation) for arg in _flatten(part)]
    return [annotation]


def _range(field: FieldInfo, kind: str) -> str:
    bounds: dict[str, object] = {}
    for item in field.metadata:
        for attr in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, attr.capitalize())):
                bounds[attr] = getattr(item, attr)
    low = f"{bounds['ge']}" if "ge" in bounds else f"> {bounds['gt']}" if "gt" in bounds else None
    high = bounds.get("le", bounds.get("lt"))
    if "ge" in bounds and "le" in bounds:
        return f"{kind}, {low}–{high}"
    parts = [kind] + ([f"≥ {low}" if "ge" in bounds else low] if low else []) + ([f"≤ {high}"] if high else [])
    return ", ".join(parts)


def errors_table() -> str:
    """docs/errors.md's table: one row per ``ErrorKind`` of errors.py, in code order."""
    rows = ["| code | error | HTTP | when |", "|---|---|---|---|"]
    for kind in sorted(ERRORS.values(), key=lambda kind: kind.code):
        rows.append(f"| {kind.code} | {kind.error} | {kind.status} | {_cell(kind.when)} |")
    return "\n".join(rows)


def declared_events() -> list[tuple[str, str, str]]:
    """(constant, event string, meaning) for every event of events.py, in its order."""
    body = ast.parse(EVENTS_PY.read_text(encoding="utf-8")).body
    found = []
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            assert isinstance(node.value, ast.Constant), node.target.id
            doc = ""
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                doc = str(following.value.value)
            found.append((node.target.id, str(node.value.value), doc))
    return found


def events_table() -> str:
    """docs/events.md's table: one row per audit event."""
    rows = ["| event | meaning | constant |", "|---|---|---|"]
    for name, value, doc in declared_events():
        rows.append(f"| `{value}` | {_cell(doc)} | `events.{name}` |")
    return "\n".join(rows)


def _cell(text: str | None) -> str:
    return " ".join((text or "").split()).replace("|", "\\|")


# file (from the repository root), the table's name in its markers, its renderer
TABLES: list[tuple[str, str, Callable[[], str]]] = [
    ("README.md", "settings", settings_table),
    ("docs/errors.md", "errors", errors_table),
    ("docs/events.md", "events", events_table),
]


def markers(name: str) -> tuple[str, str]:
    return (
        f"<!-- {name}: generated by `python -m tools.gen_docs`, edit the code instead -->",
        f"<!-- end of {name} -->",
    )


def rendered(text: str, name: str, table: str) -> str:
    """``text`` with the table between ``name``'s markers replaced. Raises ValueError without them."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"expected one {begin!r} and one {end!r}")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table}\n{end}{tail}"


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for relative, name, render in TABLES:
        path = ROOT / relative
        text = path.read_text(encoding="utf-8")
        new = rendered(text, name, render())
        if new != text:
            stale.append(relative)
            if not check:
                path.write_text(new, encoding="utf-8")
    if check and stale:
        print("out of date (run: python -m tools.gen_docs): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

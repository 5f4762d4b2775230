"""Audit events are named once, in ``openplatform/events.py`` (issue 11).

A call site that writes ``audit("token.issued", ...)`` would pass review and
drift from the list operators read (``docs/events.md``); these tests read the
source with ``ast`` and refuse it.
"""

from __future__ import annotations

import ast
from pathlib import Path

from openplatform import events

SRC = Path(__file__).resolve().parents[2] / "src" / "openplatform"
EVENTS_PY = SRC / "events.py"


def declared() -> dict[str, tuple[str, str | None]]:
    """NAME → (event string, docstring or None), in the order of events.py."""
    body = ast.parse(EVENTS_PY.read_text()).body
    found: dict[str, tuple[str, str | None]] = {}
    for node, following in zip(body, [*body[1:], None], strict=True):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Constant):
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            assert isinstance(target, ast.Name)
            doc = None
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                doc = str(following.value.value)
            found[target.id] = (str(node.value.value), doc)
    return found


def sources() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(SRC.rglob("*.py")) if p != EVENTS_PY]


def called_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def test_every_event_is_a_documented_constant_named_after_its_string() -> None:
    found = declared()
    assert len(found) >= 40
    for name, (value, doc) in found.items():
        assert name == value.upper().replace(".", "_"), name
        assert doc and doc.strip(), f"{name} has no one-line meaning"
        assert getattr(events, name) == value
    values = [value for value, _ in found.values()]
    assert len(set(values)) == len(values)


def test_no_audit_call_passes_a_string_literal_as_the_event() -> None:
    offending = []
    for path, tree in sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and called_name(node).endswith("audit") and node.args:
                first = node.args[0]
                if isinstance(first, ast.JoinedStr) or (
                    isinstance(first, ast.Constant) and isinstance(first.value, str)
                ):
                    offending.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not offending, offending


def test_no_event_string_is_written_out_anywhere_else() -> None:
    """Not in a comparison or a tuple either: ``events.WEBHOOK_DELIVERED``, not ``"webhook.delivered"``."""
    values = {value for value, _ in declared().values()}
    offending = [
        f"{path.relative_to(SRC)}:{node.lineno}: {node.value}"
        for path, tree in sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values
    ]
    assert not offending, offending


def test_every_event_is_written_somewhere() -> None:
    """A name no call site uses is a dead entry in the operators' list."""
    used = {
        node.attr
        for _, tree in sources()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "events"
    }
    assert not set(declared()) - used, sorted(set(declared()) - used)

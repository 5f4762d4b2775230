"""docs/launch.md tells app developers how to verify a launch: its worked example must stay true."""

from __future__ import annotations

import re
import time
from pathlib import Path

from openplatform.core.signing import derived_key, launch_canonical, sign_launch, verify_launch

DOC = (Path(__file__).resolve().parents[2] / "docs" / "launch.md").read_text()


def documented(step: str) -> str:
    found = re.search(rf"^\| {re.escape(step)} \| `([^`]+)` \|$", DOC, re.M)
    assert found, step
    return found.group(1)


def test_the_worked_example_matches_the_implementation() -> None:
    secret = re.search(r"With the secret `([0-9a-f]{64})`", DOC).group(1)  # type: ignore[union-attr]
    params = sign_launch(secret, "0123456789abcdef0123456789abcdef", "spe_1a2b3c4d5e6f7a8b", "cus_9f8e7d6c5b4a3f2e",
                         1700000000)  # fmt: skip
    assert derived_key(secret, "launch").hex() == documented("`launch_key` (hex)")
    assert launch_canonical(params) == documented("canonical string")
    assert params["signature"] == documented("`signature`")
    spe_wide = sign_launch(secret, params["app_id"], params["xspe"], None, 1700000000)
    assert spe_wide["signature"] == documented("same launch for the whole SPE (`customer_id=`)")
    assert verify_launch(secret, params, now=1700000000 + 300)
    assert not verify_launch(secret, params, now=1700000000 + 301)
    assert not verify_launch(secret, {**params, "customer_id": "cus_other"}, now=1700000000)


def test_the_plain_python_recipe_agrees() -> None:
    """The stand-alone verifier printed in the doc, run against a fresh launch."""
    recipe = re.search(r"```python\n(import hashlib.*?)```", DOC, re.S).group(1)  # type: ignore[union-attr]
    scope: dict[str, object] = {}
    exec(recipe, scope)  # noqa: S102 - our own documentation's example
    check = scope["launch_is_authentic"]
    secret, app_id = "s" * 64, "a" * 32
    fresh = sign_launch(secret, app_id, "spe_x", "cus_y")
    assert check(secret, app_id, fresh)  # type: ignore[operator]
    assert not check("t" * 64, app_id, fresh)  # type: ignore[operator]
    assert not check(secret, "b" * 32, fresh)  # type: ignore[operator]
    stale = sign_launch(secret, app_id, "spe_x", "cus_y", int(time.time()) - 600)
    assert not check(secret, app_id, stale)  # type: ignore[operator]

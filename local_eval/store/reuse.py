"""The reuse rule: a stored JSON counts only while it carries exactly the stamp a fresh run would.

Scoring a method takes minutes, so boards and the tuner reuse a stored result;
what makes it current (the method's source, its hyperparameters, the preset's
options, the reference keys) is for the scorer to say (``scoring.results``).
This module only holds the rule, so every reuse on disk follows the same one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def as_stored(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), for a fair comparison."""
    return json.loads(json.dumps(value))


def stored_if_matches(path: Path, stamp: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON object at ``path`` when every field of ``stamp`` has the same value there, else None."""
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    expected = as_stored(stamp)
    if not isinstance(stored, dict) or any(stored.get(k) != v for k, v in expected.items()):
        return None
    return stored

"""Kaggle's naming rules, and whose account a submission is pushed to.

Kaggle derives a notebook's URL slug from its title and rejects ids, slugs and
titles outside fixed lengths; checking them here lets packaging fail offline,
before the CLI or the server would. The owner is needed to write ids but must
never be the reason a credential is read or copied: only the username is read.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

PLACEHOLDER_OWNER = "your-kaggle-username"

DATASET_SLUG_LENGTH = (6, 50)
DATASET_TITLE_LENGTH = (6, 50)
KERNEL_SLUG_LENGTH = (5, 50)
KERNEL_TITLE_MIN = 5

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_OWNER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def slugify(text: str) -> str:
    """Lower-case words joined by hyphens, as Kaggle turns a title into a URL slug."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def truncate_slug(slug: str, max_length: int) -> str:
    """``slug`` cut to ``max_length`` without leaving a trailing hyphen."""
    return slug[:max_length].rstrip("-")


def is_valid_slug(slug: str, length: tuple[int, int]) -> bool:
    low, high = length
    return low <= len(slug) <= high and bool(_SLUG_RE.match(slug))


def is_valid_owner(owner: str) -> bool:
    return bool(_OWNER_RE.match(owner))


def split_ref(ref: object) -> tuple[str, str] | None:
    """``(owner, slug)`` of an ``owner/slug`` reference, None when it has another form."""
    if not isinstance(ref, str) or ref.count("/") != 1:
        return None
    owner, slug = ref.split("/")
    if not owner or not slug:
        return None
    return owner, slug


def kaggle_config_dirs() -> list[Path]:
    """Where the kaggle CLI looks for ``kaggle.json``, in its own order of preference."""
    explicit = os.environ.get("KAGGLE_CONFIG_DIR")
    if explicit:
        return [Path(explicit)]
    home = Path.home()
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [home / ".kaggle", xdg / "kaggle"]


def username_from_kaggle_json() -> str | None:
    """The ``username`` field of the first readable ``kaggle.json``; the key is never kept."""
    for folder in kaggle_config_dirs():
        path = folder / "kaggle.json"
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        username = data.get("username") if isinstance(data, dict) else None
        if isinstance(username, str) and username.strip():
            return username.strip()
    return None


def find_owner(explicit: str | None = None) -> tuple[str, str]:
    """``(owner, where it came from)``: the option, ``KAGGLE_USERNAME``, ``kaggle.json``.

    Falls back to ``PLACEHOLDER_OWNER`` so that an offline build still produces a
    complete folder; validation then warns that it must be set before pushing.
    """
    if explicit:
        return explicit.strip(), "the --owner option"
    from_env = os.environ.get("KAGGLE_USERNAME", "").strip()
    if from_env:
        return from_env, "KAGGLE_USERNAME"
    from_file = username_from_kaggle_json()
    if from_file:
        return from_file, "kaggle.json"
    return PLACEHOLDER_OWNER, "placeholder"

"""``dataset-metadata.json`` for a method's assets dataset.

``kaggle datasets create`` reads the dataset's id, title and license from this
file; the CLI rejects titles and slugs outside 6-50 characters and anything but
exactly one license, so the values are built to pass those checks.
"""

from __future__ import annotations

from builder.assets import assets_slug
from builder.kaggle_names import DATASET_TITLE_LENGTH

DEFAULT_LICENSE = "CC0-1.0"


def assets_title(method_name: str) -> str:
    """A readable title of 6-50 characters naming the method."""
    title = f"unlearnkit {method_name} assets"
    if len(title) > DATASET_TITLE_LENGTH[1]:
        title = f"{method_name[: DATASET_TITLE_LENGTH[1] - len(' assets')]} assets"
    return title


def assets_dataset_id(owner: str, method_name: str) -> str:
    return f"{owner}/{assets_slug(method_name, owner)}"


def dataset_metadata(owner: str, method_name: str, license_name: str = DEFAULT_LICENSE) -> dict:
    """Private by default (the CLI's ``datasets create`` without ``--public``)."""
    return {
        "title": assets_title(method_name),
        "id": assets_dataset_id(owner, method_name),
        "licenses": [{"name": license_name}],
    }

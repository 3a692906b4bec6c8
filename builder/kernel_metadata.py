"""``kernel-metadata.json``: how ``kaggle kernels push`` creates the notebook.

Every flag is written explicitly because the CLI's defaults are wrong for this
competition: it turns the internet *on* unless told otherwise, and code
competitions reject notebooks with internet access. The kernel slug is derived
from the title the same way Kaggle does, so the two never disagree (the CLI
warns of "surprising behavior" when they do).
"""

from __future__ import annotations

from builder.errors import BuildError
from builder.kaggle_names import KERNEL_SLUG_LENGTH, find_owner, slugify, truncate_slug

COMPETITION = "neurips-2023-machine-unlearning"
KERNEL_METADATA_FILE = "kernel-metadata.json"

# Kaggle machine shapes. The competition ran on GPU; "gpu" picks the shape Kaggle
# currently gives by default. P100s are retired: Kaggle substitutes a T4.
ACCELERATORS = {
    "gpu": "NvidiaTeslaT4",
    "t4": "NvidiaTeslaT4",
    "p100": "NvidiaTeslaP100",
}


def resolve_owner(explicit: str | None = None) -> str:
    """The account written into ids: ``--owner``, ``KAGGLE_USERNAME``, ``kaggle.json`` or a placeholder."""
    return find_owner(explicit)[0]


def kernel_title(method_name: str) -> str:
    """A title whose Kaggle slug is ``kernel_slug(method_name)``."""
    return kernel_slug(method_name).replace("-", " ")


def kernel_slug(method_name: str) -> str:
    return truncate_slug(f"{slugify(method_name)}-unlearning", KERNEL_SLUG_LENGTH[1])


def machine_shape(accelerator: str) -> str:
    """The Kaggle machine shape for an ``--accelerator`` value (a short name or a shape)."""
    key = accelerator.strip().lower()
    if key in ACCELERATORS:
        return ACCELERATORS[key]
    known = {shape.lower(): shape for shape in ACCELERATORS.values()}
    if key in known:
        return known[key]
    if accelerator.startswith("Nvidia"):
        return accelerator
    choices = ", ".join(sorted(ACCELERATORS))
    raise BuildError(
        f"unknown accelerator {accelerator!r}: use one of {choices}, or a Kaggle GPU machine "
        "shape such as NvidiaTeslaT4. Competition notebooks need a GPU."
    )


def kernel_metadata(
    owner: str,
    method_name: str,
    code_file: str,
    dataset_sources: list[str],
    accelerator: str = "gpu",
) -> dict:
    """Private, GPU, no internet, the competition's data attached, plus the assets dataset."""
    return {
        "id": f"{owner}/{kernel_slug(method_name)}",
        "title": kernel_title(method_name),
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,
        "machine_shape": machine_shape(accelerator),
        "dataset_sources": list(dataset_sources),
        "competition_sources": [COMPETITION],
        "kernel_sources": [],
        "model_sources": [],
    }

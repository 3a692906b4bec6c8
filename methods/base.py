"""The contract every unlearning method fulfils.

A method is a class so that researchers can keep hyperparameters on ``self`` and
split the work into helper methods; the builder later flattens the class into the
plain ``unlearning()`` function the competition notebook calls.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn as nn


class BaseMethod:
    """Subclass this, set ``name`` and implement ``run``.

    ``run`` must modify ``net`` in place and leave it in eval mode: the notebook
    saves ``net.state_dict()`` after the call, so a rebound or returned model would
    be lost. Hyperparameters belong in ``__init__`` with defaults, so that
    ``--set lr=0.01`` can override them when the notebook is built.

    ``assets`` lists files (relative to the method's file, or absolute) the method
    reads at run time; they are bundled as a Kaggle dataset and their folder is
    given to the notebook as ``ASSETS_DIR``. Methods find them with
    ``methods.common.asset_path(name)``.
    """

    name: ClassVar[str] = ""
    assets: ClassVar[tuple[str, ...]] = ()

    def run(self, net: nn.Module, retain_loader, forget_loader, val_loader) -> None:
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    def hyperparameters(self) -> dict[str, object]:
        """The instance attributes set in ``__init__``: what ``--set`` can change."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

"""The contract every unlearning method fulfils.

A method is a class so that researchers can keep hyperparameters on ``self`` and
split the work into helper methods; the builder later flattens the class into the
plain ``unlearning()`` function the competition notebook calls.

The competition's starter kit builds methods as ``all_method_handlers()[name](name)``:
its ``BaseMethod`` takes the method's name in the constructor and answers it with
``get_name()``. This one does too, plainly: a starter-kit file whose ``__init__``
takes ``name`` builds as written, and ``new_method`` passes the name only to
classes that take one. Where a class sets no ``name``, ``method_name`` says what
it is called; discovery writes that onto the class (``builder.discover``).
"""

from __future__ import annotations

import inspect
from typing import ClassVar

import torch.nn as nn

NAME = "name"  # the identity attribute: never a hyperparameter


class BaseMethod:
    """Subclass this, set ``name`` (a class attribute, or ``__init__``'s ``name``) and implement ``run``.

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

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name

    def get_name(self) -> str:
        return self.name

    def run(self, net: nn.Module, retain_loader, forget_loader, val_loader) -> None:
        raise NotImplementedError(f"{type(self).__name__}.run() is not implemented")

    def hyperparameters(self) -> dict[str, object]:
        """The instance attributes set in ``__init__``: what ``--set`` can change (never ``name``)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_") and k != NAME}


def method_name(cls: type) -> str:
    """What ``cls`` is called: its ``name``, else its ``__init__``'s ``name`` default, else its class name."""
    if getattr(cls, NAME, ""):
        return cls.name
    default = _name_parameter_default(cls)
    return default if isinstance(default, str) and default else cls.__name__.lower()


def takes_name(cls: type) -> bool:
    """Whether ``cls.__init__`` has a ``name`` parameter, as starter-kit methods do."""
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return False
    parameter = parameters.get(NAME)
    return parameter is not None and parameter.kind in (
        parameter.POSITIONAL_OR_KEYWORD,
        parameter.KEYWORD_ONLY,
    )


def new_method(cls: type[BaseMethod], **hyperparameters) -> BaseMethod:
    """An instance of ``cls`` with ``hyperparameters``, its name passed the starter kit's way when it takes one.

    A hyperparameter ``__init__`` takes is passed to it; any other (an attribute
    ``__init__`` sets without taking it, ``self.steps = 3``) is set on the
    instance afterwards, as the notebook's constant would be.
    """
    accepted = init_parameters(cls)
    passed = {k: v for k, v in hyperparameters.items() if accepted is None or k in accepted}
    method = cls(**{NAME: method_name(cls)}, **passed) if takes_name(cls) else cls(**passed)
    for key, value in hyperparameters.items():
        if key not in passed:
            setattr(method, key, value)
    return method


def init_parameters(cls: type) -> set[str] | None:
    """The hyperparameters ``cls.__init__`` takes by keyword; None when it takes ``**kwargs`` (any)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {
        p.name
        for p in parameters
        if p.name not in ("self", NAME) and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def _name_parameter_default(cls: type) -> object:
    if not takes_name(cls):
        return None
    default = inspect.signature(cls.__init__).parameters[NAME].default
    return None if default is inspect.Parameter.empty else default

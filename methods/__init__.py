"""Unlearning methods, one file each, and the registry the tools read.

To add a method: create ``methods/<name>.py`` with a ``BaseMethod`` subclass that
sets ``name``, then import it and list it in ``_METHODS`` below.
"""

from __future__ import annotations

from methods.amnesiacs import Amnesiacs
from methods.ams_unlearn import AmsUnlearn
from methods.bad_teacher import BadTeacher
from methods.base import BaseMethod
from methods.fanchuan import Fanchuan
from methods.finetune import Finetune, MyMethod
from methods.forget import Forget
from methods.ftsu import Ftsu
from methods.hirs import Hirs
from methods.kookmin import Kookmin
from methods.neighbour_recalibrate import NeighbourRecalibrate
from methods.progressive_saliency import ProgressiveSaliency
from methods.reset_recalibrate import ResetRecalibrate
from methods.salun import SalUn
from methods.scrub import Scrub
from methods.sebastian import Sebastian
from methods.seif import Seif
from methods.ssd import Ssd
from methods.sun import Sun

_METHODS: tuple[type[BaseMethod], ...] = (
    Finetune,
    MyMethod,
    Fanchuan,
    Kookmin,
    Seif,
    Sebastian,
    Amnesiacs,
    Sun,
    Forget,
    SalUn,
    Scrub,
    BadTeacher,
    ProgressiveSaliency,
    AmsUnlearn,
    Hirs,
    Ftsu,
    Ssd,
    ResetRecalibrate,
    NeighbourRecalibrate,
)


def all_method_handlers() -> dict[str, type[BaseMethod]]:
    """Registered methods by name, as in the competition's starter kit."""
    handlers: dict[str, type[BaseMethod]] = {}
    for cls in _METHODS:
        if cls.name in handlers:
            raise ValueError(f"two methods registered as {cls.name!r}")
        handlers[cls.name] = cls
    return handlers


__all__ = ["BaseMethod", "all_method_handlers"]

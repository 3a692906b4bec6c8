"""Find the method class a researcher means: a registered name or a file path.

A file can be tried before it is registered, so paths are imported directly; the
source is parsed first so that a syntax error is reported as file:line rather
than as an import traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path

from builder.errors import USER_CODE_ERRORS, BuildError, describe
from builder.module_index import parse_source

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class MethodTarget:
    cls: type
    module_name: str
    path: Path

    @property
    def method_name(self) -> str:
        return self.cls.name


def _base_method() -> type:
    from methods.base import BaseMethod

    return BaseMethod


def method_name(cls: type) -> str:
    from methods.base import method_name as named

    return named(cls)


def looks_like_path(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def resolve_target(target: str, class_name: str | None = None) -> MethodTarget:
    """A registered method name, or the path of a method file (optionally a class in it)."""
    if looks_like_path(target):
        return _from_path(Path(target), class_name)
    from methods import all_method_handlers

    handlers = all_method_handlers()
    if target not in handlers:
        known = ", ".join(sorted(handlers))
        raise BuildError(
            f"unknown method {target!r}: registered methods are {known}. "
            "Give a registered name or the path of a method file (e.g. methods/my_idea.py)."
        )
    cls = handlers[target]
    if class_name is not None and cls.__name__ != class_name:
        raise BuildError(f"method {target!r} is class {cls.__name__}, not {class_name}")
    return MethodTarget(cls, cls.__module__, Path(inspect.getsourcefile(cls)).resolve())


def _module_name_for(path: Path) -> str | None:
    """The importable name of a file inside the repository's packages, if it is one."""
    try:
        relative = path.resolve().relative_to(REPO_ROOT)
    except ValueError:
        return None
    parts = list(relative.with_suffix("").parts)
    if len(parts) < 2 or not (REPO_ROOT / parts[0] / "__init__.py").exists():
        return None
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _from_path(path: Path, class_name: str | None) -> MethodTarget:
    if not path.is_file():
        raise BuildError(f"{path}: no such method file. Give a registered name or an existing .py file.")
    parse_source(path)  # syntax errors as file:line before anything runs
    module_name = _module_name_for(path)
    try:
        if module_name is not None:
            module = importlib.import_module(module_name)
        else:
            module_name = f"unlearnkit_user_{path.stem}"
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module
            if str(path.parent.resolve()) not in sys.path:
                sys.path.append(str(path.parent.resolve()))
            spec.loader.exec_module(module)
    except USER_CODE_ERRORS as exc:  # the user's module failed while importing
        raise BuildError(
            f"{path}: importing the method file failed with {describe(exc)}. "
            "The file must import cleanly (only torch, torchvision and methods.* are available)."
        ) from None
    base = _base_method()
    candidates = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj)
        and issubclass(obj, base)
        and obj is not base
        and obj.__module__ == module.__name__
    ]
    if class_name is not None:
        chosen = [c for c in candidates if c.__name__ == class_name]
        if not chosen:
            names = ", ".join(c.__name__ for c in candidates) or "none"
            raise BuildError(
                f"{path}: no BaseMethod subclass named {class_name!r} (found: {names})."
            )
        candidates = chosen
    if not candidates:
        raise BuildError(
            f"{path}: no method class found. Define a class that subclasses "
            "methods.base.BaseMethod and implements run(self, net, retain_loader, forget_loader, val_loader)."
        )
    if len(candidates) > 1:
        names = ", ".join(c.__name__ for c in candidates)
        raise BuildError(
            f"{path}: several method classes ({names}); choose one with --class NAME."
        )
    chosen = candidates[0]
    if not chosen.name:  # a starter-kit class named only by its __init__: name it once, here
        chosen.name = method_name(chosen)
    return MethodTarget(chosen, module_name, path.resolve())


def registered_methods_text() -> str:
    """Two lines per registered method: name, class and assets, then its hyperparameters.

    A method whose ``__init__`` raises is listed with its error rather than hiding the others.
    """
    from methods import all_method_handlers
    from methods.base import new_method

    lines = []
    for name, cls in all_method_handlers().items():
        try:
            params = new_method(cls).hyperparameters()
        except Exception as exc:
            params = {"<error>": f"{type(exc).__name__}: {exc}"}
        shown = ", ".join(f"{k}={v!r}" for k, v in params.items()) or "no hyperparameters"
        assets = f"  [assets: {', '.join(cls.assets)}]" if getattr(cls, "assets", ()) else ""
        lines.append(f"{name:<22} {cls.__module__}.{cls.__name__}{assets}\n{'':<22} {shown}")
    return "\n".join(lines)

"""Parsed project modules and what their top-level names are bound to.

Extraction follows names from ``run()`` into the module that defines them, so it
needs, for every module it visits, the concrete syntax tree (to copy code out
verbatim) and a table of top-level bindings (to know whether a name is a local
definition, a project import to follow, or a third-party import to keep).
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import libcst as cst
from libcst.metadata import (
    Access,
    BuiltinScope,
    ClassScope,
    ExpressionContextProvider,
    GlobalScope,
    MetadataWrapper,
    ParentNodeProvider,
    PositionProvider,
    ScopeProvider,
)

from builder.errors import BuildError


@dataclass(frozen=True)
class ImportBinding:
    """A top-level name bound by an import statement.

    ``module`` is the absolute module imported from; ``attr`` the imported name for
    ``from module import attr``, None for ``import module``. ``statement`` is the
    import as it should be emitted (only this binding), e.g. ``import torch.nn as nn``.
    """

    local: str
    module: str
    attr: str | None
    statement: str
    line: int


@dataclass(frozen=True)
class Definition:
    """A top-level ``def``, ``class`` or assignment statement that binds ``names``."""

    names: tuple[str, ...]
    node: cst.CSTNode
    line: int


@dataclass
class ParsedModule:
    """One source file, parsed once, with the metadata extraction needs."""

    name: str
    path: Path
    wrapper: MetadataWrapper
    definitions: dict[str, list[Definition]] = field(default_factory=dict)
    imports: dict[str, ImportBinding] = field(default_factory=dict)
    future_imports: tuple[str, ...] = ()

    @property
    def tree(self) -> cst.Module:
        return self.wrapper.module

    @cached_property
    def positions(self):
        return self.wrapper.resolve(PositionProvider)

    @cached_property
    def parents(self):
        return self.wrapper.resolve(ParentNodeProvider)

    @cached_property
    def contexts(self):
        return self.wrapper.resolve(ExpressionContextProvider)

    @cached_property
    def scopes(self):
        return self.wrapper.resolve(ScopeProvider)

    @cached_property
    def accesses(self) -> dict[int, Access]:
        """Every name read in the module, keyed by the id of its ``Name`` node."""
        found: dict[int, Access] = {}
        for scope in {s for s in self.scopes.values() if s is not None}:
            for access in scope.accesses:
                if isinstance(access.node, cst.Name):
                    found[id(access.node)] = access
        return found

    @cached_property
    def identifiers(self) -> frozenset[str]:
        """All variable names assigned or read anywhere: new names must avoid them."""
        names: set[str] = set()
        for scope in {s for s in self.scopes.values() if s is not None}:
            if not isinstance(scope, ClassScope):  # class attributes are not variables
                names.update(a.name.split(".")[0] for a in scope.assignments)
            names.update(a.node.value for a in scope.accesses if isinstance(a.node, cst.Name))
        return frozenset(names)

    def line_of(self, node: cst.CSTNode) -> int:
        return self.positions[node].start.line

    def where(self, node: cst.CSTNode) -> str:
        return f"{self.path}:{self.line_of(node)}"

    def is_global_reference(self, access: Access) -> bool:
        """True when the name resolves at module level (or to a builtin, or nowhere)."""
        return all(isinstance(r.scope, GlobalScope | BuiltinScope) for r in access.referents)

    def is_builtin_reference(self, access: Access) -> bool:
        return bool(access.referents) and all(
            isinstance(r.scope, BuiltinScope) for r in access.referents
        )


def _dotted(node: cst.BaseExpression) -> str:
    if isinstance(node, cst.Name):
        return node.value
    if isinstance(node, cst.Attribute):
        return f"{_dotted(node.value)}.{node.attr.value}"
    raise TypeError(f"not a dotted name: {node!r}")


def _assigned_names(target: cst.BaseExpression) -> list[str]:
    if isinstance(target, cst.Name):
        return [target.value]
    if isinstance(target, cst.Tuple | cst.List):
        names: list[str] = []
        for element in target.elements:
            names.extend(_assigned_names(element.value))
        return names
    if isinstance(target, cst.StarredElement):
        return _assigned_names(target.value)
    return []


def _resolve_relative(module_name: str, is_package: bool, relative: int, target: str) -> str:
    package = module_name if is_package else module_name.rpartition(".")[0]
    return importlib.util.resolve_name("." * relative + target, package)


class ModuleIndex:
    """Loads and caches project modules by name; the method's own file may be a bare path."""

    def __init__(self, project_roots: tuple[Path, ...]) -> None:
        self.project_roots = tuple(p.resolve() for p in project_roots)
        self._modules: dict[str, ParsedModule] = {}

    def is_project_module(self, module_name: str) -> bool:
        """Project modules are inlined; everything else is imported in the notebook."""
        if module_name in self._modules:
            return True
        path = module_file(module_name)
        if path is None:
            return False
        path = path.resolve()
        if any(part in {"site-packages", "dist-packages", ".venv"} for part in path.parts):
            return False
        return any(root == path.parent or root in path.parents for root in self.project_roots)

    def get(self, module_name: str) -> ParsedModule:
        if module_name not in self._modules:
            path = module_file(module_name)
            if path is None:
                raise BuildError(f"cannot find the source of module {module_name!r}")
            self._modules[module_name] = parse_module_file(module_name, path)
        return self._modules[module_name]

    def add(self, parsed: ParsedModule) -> None:
        self._modules[parsed.name] = parsed


def module_file(module_name: str) -> Path | None:
    """The .py file of a module, without importing it when it is not imported yet."""
    module = sys.modules.get(module_name)
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None:
        try:
            spec = importlib.util.find_spec(module_name)
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(".py"):
        return None
    return Path(origin)


def parse_source(path: Path) -> cst.Module:
    """Parse a file, turning a syntax error into one line that names file:line."""
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BuildError(f"{path}: cannot read the method file ({exc.strerror})") from None
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise BuildError(
            f"{path}:{exc.lineno}:{exc.offset or 1}: syntax error: {exc.msg}. "
            "Fix the file; it must be valid Python before it can be built into a notebook."
        ) from None
    try:
        return cst.parse_module(source)
    except cst.ParserSyntaxError as exc:
        raise BuildError(
            f"{path}:{exc.raw_line}:{exc.raw_column + 1}: syntax error: {exc.message}. "
            "Fix the file; it must be valid Python before it can be built into a notebook."
        ) from None


def parse_module_file(module_name: str, path: Path) -> ParsedModule:
    wrapper = MetadataWrapper(parse_source(path))
    parsed = ParsedModule(name=module_name, path=path, wrapper=wrapper)
    is_package = path.name == "__init__.py"
    futures: list[str] = []
    for statement in parsed.tree.body:
        _index_statement(parsed, statement, is_package, futures)
    parsed.future_imports = tuple(futures)
    return parsed


def _index_statement(
    parsed: ParsedModule, statement: cst.CSTNode, is_package: bool, futures: list[str]
) -> None:
    line = parsed.line_of(statement)
    if isinstance(statement, cst.FunctionDef | cst.ClassDef):
        name = statement.name.value
        parsed.definitions.setdefault(name, []).append(Definition((name,), statement, line))
        return
    if not isinstance(statement, cst.SimpleStatementLine):
        # Compound statements (if/try/for/with) at module level: their names are not
        # indexed, so using one from run() is reported as an unsupported construct.
        for name in _compound_bound_names(statement):
            parsed.definitions.setdefault(name, []).append(Definition((), statement, line))
        return
    for small in statement.body:
        if isinstance(small, cst.Import):
            for alias in small.names:
                dotted = _dotted(alias.name)
                if alias.asname is not None:
                    local = alias.asname.name.value
                    text = f"import {dotted} as {local}"
                    parsed.imports[local] = ImportBinding(local, dotted, None, text, line)
                else:
                    local = dotted.split(".")[0]
                    previous = parsed.imports.get(local)
                    text = f"import {dotted}"
                    if previous is not None and previous.attr is None:
                        text = previous.statement + "\n" + text
                    parsed.imports[local] = ImportBinding(local, local, None, text, line)
        elif isinstance(small, cst.ImportFrom):
            if isinstance(small.names, cst.ImportStar):
                module = _dotted(small.module) if small.module else "."
                raise BuildError(
                    f"{parsed.path}:{line}: star import `from {module} import *` is not supported: "
                    "the builder must know where every name comes from. Import the names you use."
                )
            relative = len(small.relative)
            target = _dotted(small.module) if small.module is not None else ""
            module = (
                _resolve_relative(parsed.name, is_package, relative, target) if relative else target
            )
            for alias in small.names:
                name = _dotted(alias.name)
                local = alias.asname.name.value if alias.asname is not None else name
                if module == "__future__":
                    futures.append(name)
                    continue
                text = f"from {module} import {name}" + (f" as {local}" if local != name else "")
                parsed.imports[local] = ImportBinding(local, module, name, text, line)
        elif isinstance(small, cst.Assign):
            names = [n for target in small.targets for n in _assigned_names(target.target)]
            for name in names:
                parsed.definitions.setdefault(name, []).append(Definition(tuple(names), statement, line))
        elif isinstance(small, cst.AnnAssign | cst.AugAssign):
            for name in _assigned_names(small.target):
                parsed.definitions.setdefault(name, []).append(Definition((name,), statement, line))


def _compound_bound_names(statement: cst.CSTNode) -> list[str]:
    names: list[str] = []

    class Collector(cst.CSTVisitor):
        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
            names.append(node.name.value)
            return False

        def visit_ClassDef(self, node: cst.ClassDef) -> bool:
            names.append(node.name.value)
            return False

        def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
            names.extend(_assigned_names(node.target))

        def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
            if node.asname is not None and isinstance(node.asname.name, cst.Name):
                names.append(node.asname.name.value)
            else:
                names.append(_dotted(node.name).split(".")[0])

    statement.visit(Collector())
    return names

"""Flatten a method class into one self-contained ``unlearning()`` source.

The walk starts at ``run()`` and follows every name it reads: ``self.<value>``
becomes a named constant, ``self.<helper>`` a plain function, module-level
definitions (in the method's file or any project module) are copied verbatim,
and third-party imports are kept, trimmed to the names used. Only what ``run()``
reaches is emitted, so the notebook carries no dead code and no project import.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import libcst as cst
from libcst.metadata import ExpressionContext

from builder import checks
from builder.discover import REPO_ROOT, MethodTarget
from builder.errors import BuildError
from builder.hyperparameters import instantiate, render_value
from builder.module_index import ImportBinding, ModuleIndex, ParsedModule, module_file
from builder.naming import NameAllocator
from methods.base import NAME

UNLEARNING = "unlearning"

# Keys name what a rewritten name points at, before output names are chosen:
# ("hp", attr), ("fn", class qualname, attr), ("def", module, name), ("imp", module, attr|None).


@dataclass
class FlatFunction:
    """A method of the class (or of a base class) that becomes a plain function."""

    key: tuple
    module: ParsedModule
    node: cst.FunctionDef
    owner: type
    drops_first_param: bool


@dataclass
class Extracted:
    """The generated source and what the notebook header shows about it."""

    source: str
    method_name: str
    class_name: str
    source_path: Path
    hyperparameters: dict[str, object]
    constant_names: dict[str, str]
    inlined_modules: tuple[str, ...]
    assets: tuple[str, ...] = ()


@dataclass
class _State:
    index: ModuleIndex
    target: MethodTarget
    instance: object
    replacements: dict[int, tuple] = field(default_factory=dict)  # id(node) -> key
    literals: dict[int, str] = field(default_factory=dict)  # id(self.name node) -> string literal
    binding_names: dict[int, tuple] = field(default_factory=dict)  # id(def name node) -> key
    functions: dict[tuple, FlatFunction] = field(default_factory=dict)
    definitions: dict[tuple, list] = field(default_factory=dict)  # DefKey -> [(module, stmt)]
    imports: dict[tuple, list[ImportBinding]] = field(default_factory=dict)
    hyper: dict[str, object] = field(default_factory=dict)
    module_order: list[str] = field(default_factory=list)
    module_deps: dict[str, set[str]] = field(default_factory=dict)  # module -> modules it uses
    queue: list = field(default_factory=list)
    seen: set = field(default_factory=set)


def extract_unlearning(
    target: MethodTarget,
    overrides: Mapping[str, object] | None = None,
    reserved: Mapping[str, tuple | None] | None = None,
) -> Extracted:
    """Generate the ``unlearning`` source for ``target`` with hyperparameter ``overrides``.

    ``reserved`` names are taken by the notebook's other cells; a reserved name maps
    to the import key it stands for (so the same import can share it) or None.
    """
    instance = instantiate(target.cls, overrides or {})
    index = ModuleIndex((REPO_ROOT, target.path.parent))
    state = _State(index=index, target=target, instance=instance)
    run_fn = _flat_function(state, "run")
    problems = _problems_of(checks.check_run, run_fn.module, run_fn.node, run_fn.drops_first_param)
    while state.queue:
        problems += _analyse(state, state.queue.pop(0))
    if problems:  # every refusal at once, one line per construct
        raise BuildError("\n".join(dict.fromkeys(problems)))
    return _assemble(state, run_fn, reserved or {})


def _problems_of(step, *args) -> list[str]:
    try:
        step(*args)
    except BuildError as error:
        return str(error).split("\n")
    return []


# --- discovery of class methods -------------------------------------------------


def _class_node(module: ParsedModule, owner: type) -> cst.ClassDef:
    body: list = list(module.tree.body)
    node = None
    for part in owner.__qualname__.split("."):
        matches = [s for s in body if isinstance(s, cst.ClassDef) and s.name.value == part]
        if not matches:
            raise BuildError(f"{module.path}: cannot find the source of class {owner.__qualname__}")
        node = matches[-1]
        body = list(node.body.body)
    return node


def _function_in_class(module: ParsedModule, owner: type, attr: str) -> cst.FunctionDef:
    class_node = _class_node(module, owner)
    found = [
        s for s in class_node.body.body if isinstance(s, cst.FunctionDef) and s.name.value == attr
    ]
    if not found:
        raise BuildError(
            f"{module.path}:{module.line_of(class_node)}: cannot find the source of "
            f"{owner.__qualname__}.{attr}; define it with `def` in the class body"
        )
    return found[-1]


def _lookup(cls: type, attr: str) -> tuple[type, object] | None:
    for klass in cls.__mro__:
        if attr in vars(klass):
            return klass, vars(klass)[attr]
    return None


def _flat_function(state: _State, attr: str) -> FlatFunction:
    from methods.base import BaseMethod

    found = _lookup(state.target.cls, attr)
    assert found is not None
    owner, raw = found
    if attr == "run" and owner in (BaseMethod, object):
        raise BuildError(
            f"{state.target.path}: {state.target.cls.__name__} does not implement run(self, net, "
            "retain_loader, forget_loader, val_loader)"
        )
    key = ("fn", owner.__qualname__, attr)
    if key in state.functions:
        return state.functions[key]
    module = state.index.get(owner.__module__)
    node = _function_in_class(module, owner, attr)
    drops_first = not isinstance(raw, staticmethod)
    if drops_first and not node.params.params:
        raise BuildError(f"{module.where(node)}: method {attr}() has no `self` parameter")
    flat = FlatFunction(key, module, node, owner, drops_first)
    state.functions[key] = flat
    _note_module(state, module.name)
    state.queue.append(flat)
    return flat


def _note_module(state: _State, module_name: str) -> None:
    if module_name not in state.module_order:
        state.module_order.append(module_name)


# --- analysis -------------------------------------------------------------------


def _analyse(state: _State, item) -> list[str]:
    """What ``item`` reaches, queued for analysis; the refusals it holds, one per construct."""
    if isinstance(item, FlatFunction):
        module, node = item.module, item.node
        self_param = node.params.params[0] if item.drops_first_param else None
    else:
        module, node = item
        self_param = None
    problems = _problems_of(checks.check_no_global, module, node)
    problems += _problems_of(_check_local_imports, state, module, node)
    for name_node in _names_in(node):
        problems += _problems_of(_analyse_name, state, module, name_node, self_param)
    return problems


def _analyse_name(state: _State, module: ParsedModule, name_node: cst.Name, self_param) -> None:
    access = module.accesses.get(id(name_node))
    if access is None:
        return
    if self_param is not None and any(getattr(r, "node", None) is self_param for r in access.referents):
        _self_access(state, module, name_node)
    elif module.is_global_reference(access):
        if module.is_builtin_reference(access):
            if self_param is not None and name_node.value == "super":
                raise BuildError(
                    f"{module.where(name_node)}: super() is not supported in run() or the "
                    "methods it calls (only in __init__): the notebook has no class. Call the "
                    "helper directly or move the shared code into a module-level function."
                )
            return
        _global_access(state, module, name_node)


def _names_in(node: cst.CSTNode) -> list[cst.Name]:
    found: list[cst.Name] = []

    class Collector(cst.CSTVisitor):
        def visit_Name(self, name: cst.Name) -> None:
            found.append(name)

    node.visit(Collector())
    return found


def _self_access(state: _State, module: ParsedModule, name_node: cst.Name) -> None:
    parent = module.parents[name_node]
    if isinstance(parent, cst.Attribute) and parent.value is name_node:
        attr = parent.attr.value
        if module.contexts.get(parent) in (ExpressionContext.STORE, ExpressionContext.DEL):
            raise BuildError(
                f"{module.where(parent)}: assigning self.{attr} outside __init__ is not supported: "
                "the notebook turns self.<name> into constants. Keep state in local variables "
                "(or a module-level dict) and set hyperparameters only in __init__."
            )
        if attr == NAME:  # identity, not a hyperparameter: written in place as a string
            state.literals[id(parent)] = repr(state.instance.get_name())
            return
        state.replacements[id(parent)] = _self_attribute_key(state, module, parent, attr)
        return
    if isinstance(parent, cst.Arg):
        call = module.parents[parent]
        if isinstance(call, cst.Call) and isinstance(call.func, cst.Name) and call.func.value in {
            "getattr",
            "setattr",
            "hasattr",
            "delattr",
        }:
            raise BuildError(
                f"{module.where(call)}: {call.func.value}(self, ...) is not supported: the builder "
                "must see every attribute by name. Use self.<name> directly."
            )
    raise BuildError(
        f"{module.where(name_node)}: `self` used as a value is not supported in run() or its "
        "helpers: the notebook has no instance. Use self.<name> attributes and self.<helper>() calls."
    )


def _self_attribute_key(state: _State, module: ParsedModule, node: cst.Attribute, attr: str):
    found = _lookup(state.target.cls, attr)
    instance_vars = {k: v for k, v in vars(state.instance).items() if k != NAME}
    if attr in instance_vars:
        return _hyper(state, module, node, attr, instance_vars[attr])
    if found is not None:
        _, raw = found
        if isinstance(raw, property):
            return _hyper(state, module, node, attr, getattr(state.instance, attr))
        if inspect.isfunction(raw) or isinstance(raw, staticmethod | classmethod):
            if isinstance(raw, classmethod):
                raise BuildError(
                    f"{module.where(node)}: classmethod self.{attr} is not supported; "
                    "make it a staticmethod or a module-level function"
                )
            return _flat_function(state, attr).key
        return _hyper(state, module, node, attr, raw)
    raise BuildError(
        f"{module.where(node)}: cannot resolve self.{attr}: it is neither set in __init__ nor "
        f"defined on {state.target.cls.__name__}. Set it in __init__ or define it as a method."
    )


def _hyper(state: _State, module: ParsedModule, node: cst.CSTNode, attr: str, value: object):
    render_value(value, f"{module.where(node)}: self.{attr}")
    state.hyper[attr] = value
    return ("hp", attr)


def _global_access(state: _State, module: ParsedModule, name_node: cst.Name) -> None:
    name = name_node.value
    if name in module.definitions:
        state.replacements[id(name_node)] = _definition_key(state, module, name, name_node)
    elif name in module.imports:
        _import_access(state, module, module.imports[name], name_node)
    else:
        raise BuildError(
            f"{module.where(name_node)}: name {name!r} is not defined in {module.path.name}; "
            "import or define it at module level."
        )


def _definition_key(state: _State, module: ParsedModule, name: str, where: cst.CSTNode):
    definitions = module.definitions[name]
    compound = [d for d in definitions if not d.names]
    if compound:
        raise BuildError(
            f"{module.path}:{compound[0].line}: {name!r} is defined inside a module-level "
            "if/try/for/with block, which the builder cannot inline. Define it at the top level."
        )
    key = ("def", module.name, name)
    if key not in state.definitions:
        state.definitions[key] = [(module, d.node) for d in definitions]
        _note_module(state, module.name)
        for definition in definitions:
            if (module.name, id(definition.node)) in state.seen:
                continue
            state.seen.add((module.name, id(definition.node)))
            _bind_definition_names(state, module, definition)
            state.queue.append((module, definition.node))
    return key


def _bind_definition_names(state: _State, module: ParsedModule, definition) -> None:
    """Record the defining name nodes so a renamed definition is renamed where it is bound.

    A statement binding several names (``A, B = ...``) is emitted whole, so each of its
    names is registered as emitted too and gets a collision-free output name.
    """
    node = definition.node
    if isinstance(node, cst.FunctionDef | cst.ClassDef):
        state.binding_names[id(node.name)] = ("def", module.name, node.name.value)
        return
    for small in node.body:
        if isinstance(small, cst.Assign):
            targets = [t.target for t in small.targets]
        elif isinstance(small, cst.AnnAssign | cst.AugAssign):
            targets = [small.target]
        else:
            continue
        for target in targets:
            for name_node in _names_in(target):
                if module.contexts.get(name_node) == ExpressionContext.STORE:
                    key = ("def", module.name, name_node.value)
                    state.binding_names[id(name_node)] = key
                    state.definitions.setdefault(key, [(module, node)])


def _import_access(
    state: _State, module: ParsedModule, binding: ImportBinding, name_node: cst.Name
) -> None:
    index = state.index
    if binding.attr is None:
        if index.is_project_module(binding.module):
            _project_module_chain(state, module, binding.module, name_node)
            return
    else:
        if index.is_project_module(binding.module):
            submodule = f"{binding.module}.{binding.attr}"
            if module_file(submodule) is not None and index.is_project_module(submodule):
                _project_module_chain(state, module, submodule, name_node)
            else:
                key = _symbol_key(state, binding.module, binding.attr, module, name_node)
                state.replacements[id(name_node)] = key
            return
    key = ("imp", binding.module, binding.attr)
    state.imports.setdefault(key, [])
    if binding not in state.imports[key]:
        state.imports[key].append(binding)
    state.replacements[id(name_node)] = key


def _symbol_key(
    state: _State, module_name: str, name: str, used_in: ParsedModule, where: cst.CSTNode
):
    """What ``module_name.name`` is, following re-exports between project modules."""
    target = state.index.get(module_name)
    if name in target.definitions:
        if target.name != used_in.name:
            state.module_deps.setdefault(used_in.name, set()).add(target.name)
        return _definition_key(state, target, name, where)
    if name in target.imports:
        binding = target.imports[name]
        if binding.attr is not None and state.index.is_project_module(binding.module):
            return _symbol_key(state, binding.module, binding.attr, used_in, where)
        if binding.attr is None and state.index.is_project_module(binding.module):
            raise BuildError(
                f"{used_in.where(where)}: {module_name}.{name} is a module; "
                "import the names you use from it"
            )
        key = ("imp", binding.module, binding.attr)
        state.imports.setdefault(key, [])
        if binding not in state.imports[key]:
            state.imports[key].append(binding)
        return key
    raise BuildError(
        f"{used_in.where(where)}: module {module_name} has no top-level name {name!r}"
    )


def _project_module_chain(
    state: _State, module: ParsedModule, module_name: str, name_node: cst.Name
) -> None:
    node: cst.CSTNode = name_node
    current = module_name
    while True:
        parent = module.parents[node]
        if not (isinstance(parent, cst.Attribute) and parent.value is node):
            raise BuildError(
                f"{module.where(name_node)}: project module {current} is used as a value; the "
                "notebook inlines project code, so use its functions and classes by name."
            )
        submodule = f"{current}.{parent.attr.value}"
        if module_file(submodule) is not None and state.index.is_project_module(submodule):
            current, node = submodule, parent
            continue
        key = _symbol_key(state, current, parent.attr.value, module, parent)
        state.replacements[id(parent)] = key
        return


def _check_local_imports(state: _State, module: ParsedModule, node: cst.CSTNode) -> None:
    if not isinstance(node, cst.FunctionDef | cst.ClassDef):
        return
    for statement in checks.nested_imports(node):
        for target in checks.imported_modules(module, statement):
            if state.index.is_project_module(target):
                raise BuildError(
                    f"{module.where(statement)}: importing project module {target} inside a "
                    "function is not supported; import it at the top of the file."
                )


# --- output -----------------------------------------------------------------------


class _Rewriter(cst.CSTTransformer):
    def __init__(self, names: Mapping[int, str], literals: Mapping[int, str]) -> None:
        self.names = names
        self.literals = literals

    def leave_Name(self, original: cst.Name, updated: cst.Name) -> cst.BaseExpression:
        new = self.names.get(id(original))
        return updated.with_changes(value=new) if new is not None else updated

    def leave_Attribute(self, original: cst.Attribute, updated: cst.Attribute):
        literal = self.literals.get(id(original))
        if literal is not None:
            return cst.SimpleString(literal)
        new = self.names.get(id(original))
        return cst.Name(new) if new is not None else updated


def _assemble(state: _State, run_fn: FlatFunction, reserved: Mapping[str, tuple | None]) -> Extracted:
    modules = [state.index.get(name) for name in state.module_order]
    taken = set().union(*(m.identifiers for m in modules))
    allocator = NameAllocator(taken=taken, reserved=reserved, builtins=set(dir(builtins)))
    allocator.fix(("fn", *run_fn.key[1:]), UNLEARNING)
    method_module = state.target.module_name
    ordered_defs = sorted(
        state.definitions,
        key=lambda k: (k[1] != method_module, state.module_order.index(k[1]), k[2]),
    )
    for key in ordered_defs:
        allocator.keep(key, key[2], module=key[1])
    for key in sorted(state.imports, key=lambda k: (k[0], k[1], k[2] or "")):
        allocator.keep(key, state.imports[key][0].local, module=None)
    for key, flat in state.functions.items():
        if flat is run_fn:
            continue
        allocator.new(key, [key[2], f"{_snake(flat.owner.__name__)}_{key[2].lstrip('_')}"])
    order = list(vars(state.instance))
    state.hyper = dict(
        sorted(state.hyper.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))
    )
    constant_names = {}
    for attr in state.hyper:
        constant_names[attr] = allocator.new(("hp", attr), [attr.upper(), f"HP_{attr.upper()}"])

    names_by_node = {nid: allocator.name_of(key) for nid, key in state.replacements.items()}
    names_by_node.update({nid: allocator.name_of(k) for nid, k in state.binding_names.items()})
    rewriter = _Rewriter(names_by_node, state.literals)

    parts: list[str] = []
    futures = sorted({f for m in modules for f in m.future_imports})
    if futures:
        parts.append(f"from __future__ import {', '.join(futures)}")
    parts.append(_import_block(state, allocator))
    if state.hyper:
        lines = [
            f"# Hyperparameters of {state.target.cls.__name__} "
            "(change them when building: --set name=value)"
        ]
        lines += [f"{constant_names[a]} = {render_value(v, a)}" for a, v in state.hyper.items()]
        parts.append("\n".join(lines))
    rank = _module_ranks(state, method_module)
    statements = {id(node): (module, node) for key in ordered_defs for module, node in state.definitions[key]}
    for _module, node in sorted(
        statements.values(),
        key=lambda mn: (rank[mn[0].name], mn[0].line_of(mn[1])),
    ):
        parts.append(_code(node.visit(rewriter)))
    helpers = [f for f in state.functions.values() if f is not run_fn]
    helpers.sort(key=lambda f: (rank[f.module.name], f.module.line_of(f.node)))
    for flat in helpers + [run_fn]:
        parts.append(_code(_as_function(flat, flat.node.visit(rewriter), allocator.name_of(flat.key))))
    source = "\n\n\n".join(p.strip("\n") for p in parts if p.strip()) + "\n"
    _verify_compiles(source, state.target.path)
    return Extracted(
        source=source,
        method_name=state.target.method_name,
        class_name=state.target.cls.__name__,
        source_path=state.target.path,
        hyperparameters=dict(state.hyper),
        constant_names=constant_names,
        inlined_modules=tuple(state.module_order),
        assets=tuple(getattr(state.target.cls, "assets", ()) or ()),
    )


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _module_ranks(state: _State, method_module: str) -> dict[str, int]:
    """Dependencies before dependants (module-level code runs at definition time)."""
    order: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in order or name in path:  # done, or an import cycle: keep discovery order
            return
        for dependency in sorted(state.module_deps.get(name, ()), key=state.module_order.index):
            visit(dependency, (*path, name))
        order.append(name)

    for name in [*state.module_order[1:], state.module_order[0]]:
        visit(name, ())
    if method_module in order:
        order.remove(method_module)
        order.append(method_module)
    return {name: rank for rank, name in enumerate(order)}


def _import_block(state: _State, allocator: NameAllocator) -> str:
    lines: set[str] = set()
    for key, bindings in state.imports.items():
        name = allocator.name_of(key)
        binding = bindings[0]
        if name == binding.local:
            for b in bindings:
                lines.update(b.statement.split("\n"))
        elif binding.attr is None:
            lines.add(f"import {binding.module} as {name}")
        else:
            lines.add(f"from {binding.module} import {binding.attr} as {name}")
    plain = sorted(line for line in lines if line.startswith("import "))
    grouped: dict[str, list[str]] = {}
    for line in sorted(line for line in lines if line.startswith("from ")):
        module, _, names = line[len("from ") :].partition(" import ")
        grouped.setdefault(module, []).append(names)
    froms = [f"from {m} import {', '.join(names)}" for m, names in grouped.items()]
    return "\n".join(plain + froms)


def _as_function(flat: FlatFunction, node: cst.FunctionDef, name: str) -> cst.FunctionDef:
    params = node.params
    if flat.drops_first_param:
        params = params.with_changes(params=params.params[1:])
    decorators = [
        d
        for d in node.decorators
        if not (isinstance(d.decorator, cst.Name) and d.decorator.value in {"staticmethod"})
    ]
    return node.with_changes(name=cst.Name(name), params=params, decorators=decorators)


def _code(node: cst.CSTNode) -> str:
    return cst.Module(body=[node]).code


def _verify_compiles(source: str, path: Path) -> None:
    try:
        ast.parse(source)
    except SyntaxError as exc:  # a bug in the builder, not in the user's code
        raise BuildError(
            f"{path}: internal error: the generated unlearning() source does not parse "
            f"({exc.msg} at line {exc.lineno}). Please report this with the method file."
        ) from None

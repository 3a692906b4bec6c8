"""Constructs the notebook cannot reproduce, each reported with file:line.

The driver calls ``unlearning(net, retain_loader, forget_loader, val_loader)``
positionally and saves ``net`` afterwards, so ``run()`` must take exactly those
four arguments, change ``net`` in place and return nothing.
"""

from __future__ import annotations

import importlib.util

import libcst as cst

from builder.errors import BuildError
from builder.module_index import ParsedModule

RUN_PARAMETERS = ("net", "retain_loader", "forget_loader", "val_loader")


def check_run(module: ParsedModule, node: cst.FunctionDef, drops_first: bool) -> None:
    """The signature, no rebinding of ``net`` and no returned value, all reported at once.

    A starter-kit method often breaks several rules together (a ``phase`` parameter,
    ``net = deepcopy(net)``, ``return net``): one report with a line per construct
    saves a build-fix-rebuild round per rule.
    """
    problems = _signature_problems(module, node, drops_first)
    positional = list(node.params.posonly_params) + list(node.params.params)
    if drops_first:
        positional = positional[1:]
    if positional:
        problems += _rebinding_problems(module, node, positional[0])
    for statement in _own_statements(node, cst.Return):
        if statement.value is not None:
            problems.append(
                f"{module.where(statement)}: run() returns a value, which the notebook would "
                "discard: modify `net` in place and return None."
            )
    if problems:
        raise BuildError("\n".join(problems))


def _signature_problems(module: ParsedModule, node: cst.FunctionDef, drops_first: bool) -> list[str]:
    params = node.params
    positional = list(params.posonly_params) + list(params.params)
    if drops_first:
        positional = positional[1:]
    extras = []
    if isinstance(params.star_arg, cst.Param):
        extras.append("*" + params.star_arg.name.value)
    extras += [p.name.value for p in params.kwonly_params]
    if params.star_kwarg is not None:
        extras.append("**" + params.star_kwarg.name.value)
    if len(positional) == 4 and not extras:
        return []
    got = ", ".join([p.name.value for p in positional] + extras)
    return [
        f"{module.where(node)}: run() must take exactly (self, {', '.join(RUN_PARAMETERS)}), "
        f"got ({got}). The competition calls unlearning() with these four arguments only; "
        "move other options to __init__ as hyperparameters."
    ]


def _rebinding_problems(module: ParsedModule, node: cst.FunctionDef, net_param: cst.Param) -> list[str]:
    scope = module.scopes[node.body]
    return [
        f"{module.where(assignment.node)}: run() rebinds `{net_param.name.value}`: the "
        "notebook saves the model object it passed in, so change it in place "
        "(load_state_dict, in-place parameter updates) instead of assigning a new model."
        for assignment in scope.assignments[net_param.name.value]
        if assignment.node is not net_param
    ]


def check_no_global(module: ParsedModule, node: cst.CSTNode) -> None:
    for statement in _all(node, cst.Global):
        names = ", ".join(n.name.value for n in statement.names)
        raise BuildError(
            f"{module.where(statement)}: `global {names}` is not supported in inlined code: the "
            "notebook shares one namespace with the driver. Pass values as arguments or keep "
            "state in a module-level dict."
        )


def nested_imports(node: cst.CSTNode) -> list[cst.Import | cst.ImportFrom]:
    return _all(node, cst.Import) + _all(node, cst.ImportFrom)


def imported_modules(module: ParsedModule, statement: cst.Import | cst.ImportFrom) -> list[str]:
    if isinstance(statement, cst.Import):
        return [cst.Module([]).code_for_node(a.name) for a in statement.names]
    target = cst.Module([]).code_for_node(statement.module) if statement.module else ""
    if statement.relative:
        package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
        target = importlib.util.resolve_name("." * len(statement.relative) + target, package)
    return [target]


def _all(node: cst.CSTNode, kind: type) -> list:
    found: list = []

    class Collector(cst.CSTVisitor):
        def on_visit(self, visited: cst.CSTNode) -> bool:
            if isinstance(visited, kind):
                found.append(visited)
            return True

    node.visit(Collector())
    return found


def _own_statements(node: cst.FunctionDef, kind: type) -> list:
    """Statements of ``kind`` in the function itself, not in nested functions or classes."""
    found: list = []

    class Collector(cst.CSTVisitor):
        def on_visit(self, visited: cst.CSTNode) -> bool:
            if visited is not node and isinstance(visited, cst.FunctionDef | cst.ClassDef | cst.Lambda):
                return False
            if isinstance(visited, kind):
                found.append(visited)
            return True

    node.visit(Collector())
    return found

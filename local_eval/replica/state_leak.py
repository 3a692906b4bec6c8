"""What ``unlearning()`` leaves behind on the network the competition's notebook reuses.

The official notebook builds one ``resnet18`` and, before each of its 512 calls, only
reloads the weights with ``load_state_dict``. Anything else a method changes on the
module object (a hook, a ``requires_grad`` flag, a replaced layer, a new attribute,
a BatchNorm momentum) is still there for the next call, so the 512 checkpoints are
not 512 runs of the same method. ``load_state_dict`` restores parameters and buffers
only, so comparing the reused network with a freshly built one, field by field except
for those values, finds exactly that state: nothing is sampled or guessed.

Gradients (``.grad``) are not compared: every optimiser's ``zero_grad`` resets them,
and nearly every method leaves the last step's gradients behind harmlessly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.modules.module as torch_module

MARKER = "UNLEARNKIT_STATE_LEAKS"
GLOBAL = "<torch.nn global hooks>"
MAX_LINES = 20

# Fields of nn.Module that are bookkeeping, not state a method sets: the tensors that
# load_state_dict restores, the submodule table (compared by path), the mode (methods
# set it themselves; the official driver never does) and a flag hook removal never resets.
_SKIPPED_FIELDS = {"_parameters", "_buffers", "_modules", "training", "_is_full_backward_hook"}

FIXES = {
    "hook registered": "keep the handle that register_*hook returns and call handle.remove() before unlearning() returns",
    "requires_grad changed": "restore the flag before returning (parameter.requires_grad_(True)); to train only some layers, pass only their parameters to the optimiser instead",
    "module replaced": "do not assign submodules of net; change weights in place (copy_, load_state_dict), or work on copy.deepcopy(net) and load its state_dict into net",
    "module added": "do not attach submodules to net; keep extra layers in local variables",
    "module removed": "do not delete submodules of net; keep the architecture unchanged",
    "attribute added": "keep the value in a local variable, or del it before returning",
    "attribute removed": "do not delete attributes of net's modules",
    "attribute changed": "save the old value and restore it before returning",
    "parameter added": "do not register parameters or buffers on net; keep extra tensors in local variables",
    "parameter removed": "keep every parameter and buffer of net registered",
    "dtype changed": "convert back before returning (net.float())",
    "device changed": "move back before returning (net.to(DEVICE))",
}


@dataclass(frozen=True)
class Leak:
    """One piece of state a call left on the reused network."""

    path: str  # module path in the network: "fc", "conv1.weight", "layer1.0.bn1"
    kind: str  # a key of FIXES
    detail: str

    def line(self, method_file: str) -> str:
        return f"{method_file}: {self.path}: {self.kind} ({self.detail}); fix: {FIXES[self.kind]}."


def find_leaks(net: torch.nn.Module, fresh: torch.nn.Module) -> list[Leak]:
    """Every difference between ``net`` after its calls and ``fresh``, a newly built network.

    Both must sit on the same device; values that ``load_state_dict`` restores are ignored.
    """
    leaks = _global_hook_leaks()
    fresh_modules = dict(fresh.named_modules())
    net_modules = dict(net.named_modules())
    for path in sorted(fresh_modules.keys() - net_modules.keys()):
        if not _under_replaced(path, net_modules, fresh_modules):
            leaks.append(Leak(_shown(path), "module removed", f"{type(fresh_modules[path]).__name__} is gone"))
    for path, module in net_modules.items():
        reference = fresh_modules.get(path)
        if reference is None:
            if not _under_replaced(path, net_modules, fresh_modules):
                leaks.append(Leak(_shown(path), "module added", f"a new {type(module).__name__}"))
            continue
        if type(module) is not type(reference):
            leaks.append(
                Leak(
                    _shown(path),
                    "module replaced",
                    f"was {type(reference).__name__}, now {type(module).__name__}",
                )
            )
            continue
        leaks += _module_leaks(path, module, reference)
    return leaks


def leak_records(net: torch.nn.Module, device) -> list[dict]:
    """``find_leaks`` against a fresh competition network on ``device``, JSON-ready (run in the kernel)."""
    from torchvision.models import resnet18

    fresh = resnet18(weights=None, num_classes=10).to(device)
    return [asdict(leak) for leak in find_leaks(net, fresh)]


def leak_report(leaks: list[Leak], method_file: str) -> str:
    """One line per leak, naming the method file, the module path, the kind and the fix."""
    lines = [leak.line(method_file) for leak in leaks[:MAX_LINES]]
    if len(leaks) > MAX_LINES:
        lines.append(f"... and {len(leaks) - MAX_LINES} more of the same kinds.")
    return "\n".join(lines)


def check_cell_source(repo_root: str) -> str:
    """The cell the dry-run appends after the driver: the reused ``net`` against a fresh one."""
    return (
        "# unlearnkit dry-run only (not in the submitted notebook): state left on the reused network\n"
        "import json as _unlearnkit_json\n"
        "import sys as _unlearnkit_sys\n"
        f"_unlearnkit_sys.path.insert(0, {repo_root!r})\n"
        "from local_eval.replica.state_leak import MARKER as _UNLEARNKIT_LEAKS, leak_records as _unlearnkit_leaks\n"
        "if isinstance(globals().get('net'), torch.nn.Module):\n"
        "    _unlearnkit_device = next(net.parameters()).device\n"
        "    print(_UNLEARNKIT_LEAKS, _unlearnkit_json.dumps(_unlearnkit_leaks(net, _unlearnkit_device)))\n"
    )


def _global_hook_leaks() -> list[Leak]:
    leaks = []
    for field, value in vars(torch_module).items():
        if field.startswith("_global_") and field.endswith("hooks") and isinstance(value, dict) and value:
            hooks = _hooks_text(len(value), field.removeprefix("_global_"), "global ")
            leaks.append(Leak(GLOBAL, "hook registered", hooks))
    return leaks


def _module_leaks(path: str, module: torch.nn.Module, reference: torch.nn.Module) -> list[Leak]:
    leaks = []
    fields, reference_fields = vars(module), vars(reference)
    for field, value in fields.items():
        if field in _SKIPPED_FIELDS:
            continue
        if field.endswith("hooks") and isinstance(value, dict):
            extra = len(value) - len(reference_fields.get(field, {}))
            if extra > 0:
                hooks = _hooks_text(extra, field.strip("_"))
                leaks.append(Leak(_shown(path), "hook registered", hooks))
        elif "hooks" in field:
            continue  # bookkeeping that follows the hook tables above
        elif field not in reference_fields:
            leaks.append(Leak(_shown(path), "attribute added", f"{field} = {_brief(value)}"))
        elif not _same(value, reference_fields[field]):
            leaks.append(
                Leak(
                    _shown(path),
                    "attribute changed",
                    f"{type(module).__name__}.{field} {_brief(reference_fields[field])} -> {_brief(value)}",
                )
            )
    for field in sorted(reference_fields.keys() - fields.keys() - _SKIPPED_FIELDS):
        leaks.append(Leak(_shown(path), "attribute removed", field))
    for table in ("_parameters", "_buffers"):
        leaks += _tensor_leaks(path, fields[table], reference_fields[table])
    return leaks


def _tensor_leaks(path: str, tensors: dict, reference: dict) -> list[Leak]:
    leaks = []
    for name in sorted(reference.keys() - tensors.keys()):
        leaks.append(Leak(_join(path, name), "parameter removed", "no longer registered"))
    for name, tensor in tensors.items():
        where = _join(path, name)
        if name not in reference:
            leaks.append(Leak(where, "parameter added", f"{type(tensor).__name__} registered"))
            continue
        original = reference[name]
        if tensor is None or original is None:
            if (tensor is None) != (original is None):
                leaks.append(Leak(where, "attribute changed", f"{_brief(original)} -> {_brief(tensor)}"))
            continue
        if type(tensor) is not type(original):
            leaks.append(
                Leak(where, "module replaced", f"was {type(original).__name__}, now {type(tensor).__name__}")
            )
        if tensor.requires_grad != original.requires_grad:
            leaks.append(Leak(where, "requires_grad changed", f"{original.requires_grad} -> {tensor.requires_grad}"))
        if tensor.dtype != original.dtype:
            leaks.append(Leak(where, "dtype changed", f"{original.dtype} -> {tensor.dtype}"))
        if tensor.device != original.device:
            leaks.append(Leak(where, "device changed", f"{original.device} -> {tensor.device}"))
        for hooks in ("_backward_hooks", "_post_accumulate_grad_hooks"):
            count = len(getattr(tensor, hooks, None) or {})
            if count:
                text = _hooks_text(count, hooks.strip("_"), "tensor ")
                leaks.append(Leak(where, "hook registered", text))
        for field in sorted(vars(tensor).keys() - vars(original).keys()):
            leaks.append(Leak(where, "attribute added", f"{field} set on the tensor"))
    return leaks


def _hooks_text(count: int, table: str, kind: str = "") -> str:
    """``2 global forward hooks`` from a hook table's name (``forward_hooks``) and a count."""
    label = table.removesuffix("s").replace("_", " ")
    return f"{count} {kind}{label}{'s' if count > 1 else ''}"


def _under_replaced(path: str, net_modules: dict, fresh_modules: dict) -> bool:
    """Children of a replaced module are reported once, as the replacement."""
    parts = path.split(".")
    for depth in range(len(parts) - 1, -1, -1):
        parent = ".".join(parts[:depth])
        if parent in net_modules and parent in fresh_modules:
            return type(net_modules[parent]) is not type(fresh_modules[parent])
    return False


def _same(value: object, reference: object) -> bool:
    if isinstance(value, torch.Tensor) or isinstance(reference, torch.Tensor):
        return (
            isinstance(value, torch.Tensor)
            and isinstance(reference, torch.Tensor)
            and value.shape == reference.shape
            and torch.equal(value.cpu(), reference.cpu())
        )
    try:
        return bool(value == reference)
    except Exception:  # objects whose == is not a truth value
        return repr(value) == repr(reference)


def _brief(value: object) -> str:
    text = f"a tensor of shape {tuple(value.shape)}" if isinstance(value, torch.Tensor) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _shown(path: str) -> str:
    return path or "net"

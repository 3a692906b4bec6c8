"""How long 512 calls would take on Kaggle's GPUs, from the work one call does.

Seconds measured on the dry-run's machine say little about Kaggle, whose notebooks
run on a P100 or a T4 with an 8-hour limit. The floating-point work of one call does
transfer: it is counted once with ``FlopCounterMode`` (matrix products and
convolutions, forward and backward; element-wise work is not counted), attributed to
the loader whose batch was being processed, scaled to other data sizes per loader
(a pass over a loader costs in proportion to its size) and divided by each GPU's
peak FP32 throughput at a stated efficiency.

The competition's hidden data sizes are not published. The organisers' scoring code
(google-deepmind/unlearning_evaluation, ``surf.py``) fixes their shape only: CASIA-SURF
frames at 32x32, split 80/10/10 into train/validation/test, and a forget set of 15
persons; give the sizes with ``--project-sizes RETAIN,FORGET,VALIDATION`` when known.
"""

from __future__ import annotations

from dataclasses import dataclass

MARKER = "UNLEARNKIT_FLOPS"
SPLITS = ("retain", "forget", "validation")
OTHER = "other"  # work before the first batch is drawn: not scaled
KAGGLE_CALLS = 512  # checkpoints the competition's scorer asks for
BUDGET_SECONDS = 8 * 3600
# Peak FP32 throughput from NVIDIA's data sheets: Tesla P100 PCIe 9.3 TFLOP/s, T4 8.1 TFLOP/s.
KAGGLE_GPUS = {"P100": 9.3e12, "T4": 8.1e12}
# A ResNet-18 on 32x32 images in batches of 64 keeps a GPU far from its peak; 30 % is
# an assumption for small-image training, stated in every projection, not a measurement.
DEFAULT_EFFICIENCY = 0.3


@dataclass(frozen=True)
class CallFlops:
    """The counted work of one ``unlearning()`` call and the run's loader sizes."""

    by_split: dict[str, float]  # FLOPs while processing each loader's batches, plus OTHER
    sizes: dict[str, int]  # examples in each loader of the counted run

    @property
    def total(self) -> float:
        return float(sum(self.by_split.values()))

    def scaled(self, sizes: dict[str, int] | None) -> float:
        """FLOPs of one call on loaders of ``sizes`` (None: the counted run's own sizes)."""
        if sizes is None:
            return self.total
        work = self.by_split.get(OTHER, 0.0)
        for split in SPLITS:
            flops = self.by_split.get(split, 0.0)
            if flops:
                work += flops * sizes[split] / max(self.sizes.get(split, 0), 1)
        return work


@dataclass(frozen=True)
class GpuProjection:
    gpu: str
    seconds_per_call: float

    @property
    def total_seconds(self) -> float:
        return self.seconds_per_call * KAGGLE_CALLS

    @property
    def over_budget(self) -> bool:
        return self.total_seconds > BUDGET_SECONDS


def project(flops: CallFlops, sizes: dict[str, int] | None, efficiency: float) -> list[GpuProjection]:
    work = flops.scaled(sizes)
    return [GpuProjection(gpu, work / (peak * efficiency)) for gpu, peak in KAGGLE_GPUS.items()]


def parse_sizes(text: str | None) -> dict[str, int] | None:
    """``"28000,600,3000"`` -> sizes of the retain, forget and validation sets."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != len(SPLITS) or not all(p.isdigit() and int(p) > 0 for p in parts):
        from local_eval.errors import EvalError

        raise EvalError(
            f"--project-sizes {text!r}: expected three positive whole numbers RETAIN,FORGET,VALIDATION, "
            "for example --project-sizes 28000,600,3500."
        )
    return dict(zip(SPLITS, map(int, parts)))


def summary(
    flops: CallFlops,
    sizes: dict[str, int] | None,
    efficiency: float = DEFAULT_EFFICIENCY,
    format_duration=None,
) -> str:
    """Lines for the dry-run's closing note: the count, the projection, a warning past 8 hours."""
    duration = format_duration or (lambda s: f"{s / 3600:.1f} h")
    shares = ", ".join(
        f"{split} {100 * flops.by_split.get(split, 0.0) / max(flops.total, 1):.0f} %" for split in SPLITS
    )
    run_sizes = ", ".join(f"{split} {flops.sizes.get(split, 0)}" for split in SPLITS)
    lines = [
        f"One unlearning() call: {_flop_text(flops.total)} counted ({shares}) on this run's "
        f"data ({run_sizes})."
    ]
    if sizes is not None:
        target = ", ".join(f"{split} {sizes[split]}" for split in SPLITS)
        lines.append(f"Scaled to {target}: {_flop_text(flops.scaled(sizes))} per call.")
    projections = project(flops, sizes, efficiency)
    lines.append(
        f"{KAGGLE_CALLS} calls on Kaggle at {efficiency:.0%} of peak FP32: "
        + "; ".join(
            f"{p.gpu} ({KAGGLE_GPUS[p.gpu] / 1e12:.1f} TFLOP/s) {duration(p.total_seconds)} "
            f"({p.seconds_per_call:.3g} s per call)"
            for p in projections
        )
        + "."
    )
    budget = BUDGET_SECONDS / KAGGLE_CALLS
    for p in projections:
        if p.over_budget:
            lines.append(
                f"warning: on a {p.gpu}, {KAGGLE_CALLS} calls would take {duration(p.total_seconds)}, past "
                f"Kaggle's 8-hour limit: {p.seconds_per_call:.3g} s per call against a budget of about "
                f"{budget:.0f} s."
            )
    return "\n".join(lines)


def count_call_flops(unlearning, net, loaders: dict, state: dict) -> dict:
    """Run ``unlearning`` once on ``net`` reset to ``state``, counting its FLOPs per loader (in the kernel).

    Each loader's class is swapped, for this call only, for a subclass that notes when a
    batch is drawn, so the work between two draws is charged to the loader that gave the batch.
    """
    from torch.utils.flop_counter import FlopCounterMode

    sizes = {split: len(loader.dataset) for split, loader in loaders.items()}
    by_split = {split: 0 for split in (*loaders, OTHER)}
    charge = {"split": OTHER, "mark": 0}
    counter = FlopCounterMode(display=False)

    def drew(split: str) -> None:
        now = counter.get_total_flops()
        by_split[charge["split"]] += now - charge["mark"]
        charge.update(split=split, mark=now)

    originals = {}
    try:
        for split, loader in loaders.items():
            originals[split] = type(loader)
            loader.__class__ = _noting_subclass(type(loader), split, drew)
        net.load_state_dict(state)
        with counter:
            unlearning(net, *loaders.values())
        by_split[charge["split"]] += counter.get_total_flops() - charge["mark"]
    except Exception as error:  # the count is advisory: the driver already ran the method
        return {"error": f"{type(error).__name__}: {error}"}
    finally:
        for split, cls in originals.items():
            loaders[split].__class__ = cls
    return {"by_split": by_split, "sizes": sizes}


def flops_from_record(record: object) -> CallFlops | None:
    if not isinstance(record, dict) or "by_split" not in record:
        return None
    return CallFlops({k: float(v) for k, v in record["by_split"].items()}, dict(record["sizes"]))


def flop_cell_source(repo_root: str) -> str:
    """The cell the dry-run appends after the driver: one more call, counted."""
    return (
        "# unlearnkit dry-run only (not in the submitted notebook): one more call, its FLOPs counted\n"
        "import json as _unlearnkit_json\n"
        "import sys as _unlearnkit_sys\n"
        f"_unlearnkit_sys.path.insert(0, {repo_root!r})\n"
        "from local_eval.replica.kaggle_projection import MARKER as _UNLEARNKIT_FLOPS, count_call_flops as _unlearnkit_flops\n"
        "if isinstance(globals().get('net'), torch.nn.Module) and all(\n"
        "    name in globals() for name in ('unlearning', 'retain_loader', 'forget_loader', 'validation_loader')\n"
        "):\n"
        "    _unlearnkit_state = torch.load(\n"
        "        os.path.join(DATA_DIR, 'original_model.pth'), map_location=next(net.parameters()).device, weights_only=True\n"
        "    )\n"
        "    _unlearnkit_loaders = {'retain': retain_loader, 'forget': forget_loader, 'validation': validation_loader}\n"
        "    print(_UNLEARNKIT_FLOPS, _unlearnkit_json.dumps(_unlearnkit_flops(unlearning, net, _unlearnkit_loaders, _unlearnkit_state)))\n"
    )


def _flop_text(flops: float) -> str:
    return f"{flops / 1e12:.3g} TFLOP" if flops >= 1e12 else f"{flops / 1e9:.3g} GFLOP"


def _noting_subclass(cls: type, split: str, drew) -> type:
    class Noting(cls):
        def __iter__(self):
            for batch in super().__iter__():
                drew(split)
                yield batch

    Noting.__name__ = cls.__name__
    Noting.__qualname__ = cls.__qualname__
    return Noting

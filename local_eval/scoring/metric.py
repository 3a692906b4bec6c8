"""The NeurIPS 2023 unlearning competition's score, as the organisers computed it, vectorised.

For every forget example the organisers pit the confidences of N unlearned models
against those of N retrained models with two families of threshold attacks (one
threshold; a window of two), turn each attack's false positive/negative rates into
a privacy epsilon, keep the worst (largest), and bucket the epsilons into points.
Their loop over examples and thresholds takes hours for 5,000 examples x 512
models; here the same thresholds are built with the same floating-point operations
as ``np.linspace`` (so that a confidence lying on a threshold falls on the same
side), counted with ``searchsorted`` on the sorted confidences, and scored through
a table of the epsilon of every (false positives, false negatives) pair, which
holds exactly the float32 values the organisers' rule gives.

Everything runs in torch, on the CPU or a GPU; the results are the same on both
because only exact operations (sorting, comparisons, IEEE +, *, /) touch the
confidences.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from local_eval.errors import EvalError

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
WINDOW_BUFFER = 2.0
NUM_LEFT_THRESHOLDS = int(math.ceil(2 * WINDOW_BUFFER * THRESHOLDS_PER_UNIT))
PEAKY_RANGE_RATIO = 0.01
BUCKET_WIDTH = 0.5
CONFIDENCE_FLOOR = 1e-45

# Thresholds (times examples) processed at once. On a CPU a few examples at a time
# keep the working arrays near the cache (larger chunks measured ~1.8x slower); a
# GPU takes more at once because it has the memory and wants the parallelism.
CPU_CHUNK_THRESHOLDS = 1 << 19
GPU_CHUNK_THRESHOLDS = 1 << 25
# The window attack scores each right threshold over the 2N + 1 left ranks its grid reaches
# while there are at most this many (N <= 128), else over its 400 searched left thresholds:
# one core, 22,000 examples x 32 models (a cpu-preset bootstrap) took 8.6 s by rank against
# 40.8 s by search, 5,000 x 512 took 32.1 s by rank against 14.1 s by search (one run,
# benchmarks/results/metric*.md); the costs, ~(2N + 1) against ~400 log2(2N) steps, cross
# near N = 256.
RANKS_BEAT_SEARCH = 257

Array = np.ndarray | torch.Tensor
Device = torch.device | str | None


def logit_scaled_confidence(logits: Array, targets: Array) -> Array:
    """log(p) - log(q) per example, as LiRA and the organisers compute it.

    ``p`` (the true class's probability) and ``q`` (the other classes' total) come
    from a float64 softmax of the max-shifted logits, each floored by 1e-45 inside the
    log, so that saturated models give large but finite confidences. Returns a
    float64 tensor for tensor input (on its device) and a numpy array otherwise.
    """
    as_numpy = not isinstance(logits, torch.Tensor)
    z = torch.as_tensor(np.asarray(logits) if as_numpy else logits.detach()).to(torch.float64)
    t = torch.as_tensor(np.asarray(targets) if not isinstance(targets, torch.Tensor) else targets)
    t = t.to(device=z.device, dtype=torch.long)
    if z.ndim != 2 or t.shape != (z.shape[0],):
        raise EvalError(
            f"logit_scaled_confidence needs logits of shape [num_examples, num_classes] and "
            f"targets of shape [num_examples]; got logits {tuple(z.shape)} and targets "
            f"{tuple(t.shape)}. Pass one row of logits per example and one label per row."
        )
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= z.shape[1]):
        raise EvalError(
            f"logit_scaled_confidence got a target outside 0..{z.shape[1] - 1} (targets span "
            f"{int(t.min())}..{int(t.max())}); the labels must index the model's {z.shape[1]} classes."
        )
    z = z - z.max(dim=1, keepdim=True).values
    probs = torch.exp(z)
    probs = probs / probs.sum(dim=1, keepdim=True)
    rows = torch.arange(z.shape[0], device=z.device)
    p = probs[rows, t]
    probs[rows, t] = 0
    q = probs.sum(dim=1)
    conf = torch.log(p + CONFIDENCE_FLOOR) - torch.log(q + CONFIDENCE_FLOOR)
    return conf.cpu().numpy() if as_numpy else conf


def example_epsilons(
    unlearned_confs: Array, retrained_confs: Array, device: Device = None
) -> np.ndarray:
    """Each forget example's epsilon in [0, 50], float64, shape [num_examples].

    Both inputs are [num_models, num_examples] (numpy or torch). ``device`` picks
    where the work runs: by default the device of a tensor input, otherwise a GPU
    when there is one. An example whose every attack is discarded (possible only
    for degenerate confidences, where the organisers' code stops with an assertion)
    gets epsilon 0: no attack told the two sides apart.
    """
    unlearned, retrained = _checked_pair(unlearned_confs, retrained_confs)
    device = _pick_device(device, unlearned_confs, retrained_confs)
    num_models, num_examples = unlearned.shape
    if num_examples == 0:
        return np.zeros(0, dtype=np.float64)
    unlearned = torch.sort(unlearned.to(device).T.contiguous(), dim=1).values
    retrained = torch.sort(retrained.to(device).T.contiguous(), dim=1).values

    unlearned_positive = _median(unlearned) >= _median(retrained)
    pos = torch.where(unlearned_positive[:, None], unlearned, retrained)
    neg = torch.where(unlearned_positive[:, None], retrained, unlearned)
    pos_range = pos[:, -1] - pos[:, 0]
    neg_range = neg[:, -1] - neg[:, 0]
    smaller = torch.minimum(pos_range, neg_range)
    larger = torch.maximum(pos_range, neg_range)
    peaky = (smaller / larger) < PEAKY_RANGE_RATIO  # 0/0 is nan: not peaky, as for the organisers

    best = torch.full((num_examples,), -math.inf, dtype=torch.float32, device=device)
    todo = torch.nonzero(~peaky).flatten()
    if todo.numel():
        pos, neg, pos_range, neg_range = pos[todo], neg[todo], pos_range[todo], neg_range[todo]
        pooled, below = _pooled_ranks(pos, neg)
        table = torch.from_numpy(_epsilon_table(num_models)).to(device)
        budget = GPU_CHUNK_THRESHOLDS if device.type == "cuda" else CPU_CHUNK_THRESHOLDS
        single = _best_single_threshold(pooled, below, table, num_models, budget)
        # The window's "positive" side is the peakier one; equal ranges make the negative positive.
        swap = pos_range >= neg_range
        window_pos = torch.where(swap[:, None], neg, pos)
        window_below = torch.where(swap[:, None], _swap_sides(below, num_models), below)
        width = torch.minimum(pos_range, neg_range)
        double = _best_window(window_pos, width, pooled, window_below, table, num_models, budget)
        best[todo] = torch.maximum(single, double)
    eps = torch.where(best == -math.inf, torch.zeros_like(best), best).clamp(0.0, EPSILON_CAP)
    eps = torch.where(peaky, torch.full_like(eps, EPSILON_CAP), eps)
    return eps.cpu().numpy().astype(np.float64)


def max_epsilon(num_models: int) -> float:
    """ceil(ln(N - 1)): the largest epsilon N models per side can resolve, so where points stop."""
    return float(math.ceil(math.log(num_models - 1))) if num_models > 1 else -math.inf


def epsilon_points(epsilons: Array | Sequence[float], num_models: int) -> np.ndarray:
    """Points per epsilon: 1 below 0.5, halving every 0.5 after, 0 from ``max_epsilon`` on.

    The bucket of an epsilon is the first one whose end exceeds it, so 0.5 itself
    already scores half a point.
    """
    eps = np.asarray(epsilons, dtype=np.float64)
    top = max_epsilon(num_models)
    num_buckets = int(math.floor(top / BUCKET_WIDTH)) if top >= BUCKET_WIDTH else 0
    bucket = np.floor(eps / BUCKET_WIDTH)
    return np.where(bucket < num_buckets, 0.5 ** np.minimum(bucket, num_buckets), 0.0)


def forget_quality(unlearned_confs: Array, retrained_confs: Array, device: Device = None) -> float:
    """F: the mean points of the forget examples' epsilons (1 is indistinguishable from retraining)."""
    unlearned, _ = _checked_pair(unlearned_confs, retrained_confs)
    num_models, num_examples = unlearned.shape
    if num_models < 3 or num_examples == 0:
        raise EvalError(
            f"forget_quality got confidences of shape {tuple(unlearned.shape)} "
            "([num_models, num_examples]); it needs at least 3 models per side (with N models "
            "points stop at ceil(ln(N - 1)), which is 0 for N = 2, so every method would "
            "score 0) and at least one forget example. Score more models or a non-empty forget set."
        )
    eps = example_epsilons(unlearned_confs, retrained_confs, device=device)
    return float(epsilon_points(eps, num_models).sum() / num_examples)


def final_score(F: float, ra_u: float, ra_r: float, ta_u: float, ta_r: float) -> float:
    """F scaled by how much retain and test accuracy the unlearned models keep (not capped at 1)."""
    if not ra_r > 0 or not ta_r > 0:
        raise EvalError(
            f"final_score divides by the retrained models' mean retain accuracy ({ra_r}) and "
            f"test accuracy ({ta_r}), which must both be positive; check that the reference "
            "models were trained and measured on non-empty retain and test sets."
        )
    return float(F * (ra_u / ra_r) * (ta_u / ta_r))


def _checked_pair(
    unlearned_confs: Array, retrained_confs: Array
) -> tuple[torch.Tensor, torch.Tensor]:
    unlearned = _as_float64("unlearned_confs", unlearned_confs)
    retrained = _as_float64("retrained_confs", retrained_confs)
    if unlearned.shape != retrained.shape:
        raise EvalError(
            f"unlearned_confs has shape {tuple(unlearned.shape)} but retrained_confs has shape "
            f"{tuple(retrained.shape)}; the metric compares the same forget examples (columns, "
            "in the same order) under the same number of unlearned and retrained models (rows)."
        )
    if unlearned.shape[0] < 2:
        raise EvalError(
            f"the metric got {unlearned.shape[0]} model(s) per side (confidences of shape "
            f"{tuple(unlearned.shape)}); it compares distributions over models, so pass at "
            "least 2 rows (the competition used 512)."
        )
    return unlearned, retrained


def _as_float64(name: str, confs: Array) -> torch.Tensor:
    if isinstance(confs, torch.Tensor):
        tensor = confs.detach().to(torch.float64)
    else:
        tensor = torch.from_numpy(np.asarray(confs, dtype=np.float64))
    if tensor.ndim != 2:
        raise EvalError(
            f"{name} has shape {tuple(tensor.shape)}; it must be [num_models, num_examples]: one "
            "row of forget-set confidences per model."
        )
    if not bool(torch.isfinite(tensor).all()):
        raise EvalError(
            f"{name} contains NaN or infinite confidences; logit_scaled_confidence always gives "
            "finite values, so check how the confidences were computed or loaded."
        )
    return tensor


def _pick_device(device: Device, *inputs: Array) -> torch.device:
    if device is not None:
        return torch.device(device)
    for x in inputs:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _median(sorted_rows: torch.Tensor) -> torch.Tensor:
    """np.median of each row: the mean of the two middle values when the count is even."""
    n = sorted_rows.shape[1]
    if n % 2:
        return sorted_rows[:, n // 2]
    return (sorted_rows[:, n // 2 - 1] + sorted_rows[:, n // 2]) / 2


def _pooled_ranks(pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both sides' confidences sorted together, and a code for each rank k that counts both sides.

    ``below[:, k] = neg_count * (2N + 1) - pos_count`` over the k smallest pooled
    values. With k = #(pooled < t) from one searchsorted, a difference of two codes
    gives a false positive count and a false negative count at once, which index
    the epsilon table directly.
    """
    num_models = pos.shape[1]
    pooled, order = torch.sort(torch.cat([pos, neg], dim=1), dim=1, stable=True)
    neg_count = torch.cumsum(order >= num_models, dim=1)
    neg_count = torch.nn.functional.pad(neg_count, (1, 0))
    rank = torch.arange(2 * num_models + 1, device=pos.device)
    return pooled, neg_count * (2 * num_models + 1) - (rank - neg_count)


def _swap_sides(below: torch.Tensor, num_models: int) -> torch.Tensor:
    """The rank codes with the roles of the two sides exchanged."""
    rank = torch.arange(below.shape[1], device=below.device)
    # below = n * (2N + 1) - (k - n), so n = (below + k) / (2N + 2).
    neg_count = torch.div(below + rank, 2 * num_models + 2, rounding_mode="floor")
    pos_count = rank - neg_count
    return pos_count * (2 * num_models + 1) - neg_count


@functools.lru_cache(maxsize=8)
def _epsilon_table(num_models: int) -> np.ndarray:
    """Epsilon of every (false positives, false negatives) count pair, flattened, float32.

    Entry ``(fp + N) * (2N + 1) + fn`` for fp in -N..N and fn in 0..2N: the
    organisers' rule evaluated in float32 as their numpy code did, inf for perfect
    separation, -inf for a discarded attack. Counts outside 0..N come from windows
    whose left end passed their right end: empty windows, which the rule discards.
    """
    rate = np.arange(num_models + 1, dtype=np.float32) / np.float32(num_models)
    fpr, fnr = rate[:, None], rate[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        eps1 = np.log(np.float32(1 - DELTA) - fpr) - np.log(fnr)
        eps2 = np.log(np.float32(1 - DELTA) - fnr) - np.log(fpr)
        eps = np.fmax(eps1, eps2)
    eps = np.maximum(eps, np.float32(0))
    eps[np.isnan(eps)] = -np.inf
    eps[(fpr == 0) != (fnr == 0)] = -np.inf
    eps[0, 0] = np.inf
    table = np.full((2 * num_models + 1, 2 * num_models + 1), -np.inf, dtype=np.float32)
    table[num_models:, : num_models + 1] = eps
    return table.ravel()


def _linspace(
    start: torch.Tensor, stop: torch.Tensor, num: torch.Tensor, width: int
) -> torch.Tensor:
    """np.linspace(start, stop, num) for each element, bit for bit, padded to ``width``.

    numpy computes ``i * ((stop - start) / (num - 1)) + start`` and then sets the
    last point to ``stop``; torch.linspace does not, so it cannot be used here.
    Padding repeats the last point (a repeated threshold cannot change a maximum);
    an empty grid becomes ``[start]``, which callers must make harmless.
    """
    i = torch.arange(width, dtype=torch.float64, device=start.device)
    last = torch.clamp(num - 1, min=0).to(torch.float64)[..., None]
    step = (stop - start)[..., None] / torch.clamp(last, min=1)
    grid = torch.minimum(i, last) * step + start[..., None]
    return torch.where((i >= last) & (last > 0), stop[..., None], grid)


def _uniform_grid(start: torch.Tensor, stop: torch.Tensor, num: int) -> torch.Tensor:
    """np.linspace for a fixed count of at least 2: the fast path of ``_linspace``."""
    step = (stop - start) / (num - 1)
    grid = torch.arange(num, dtype=torch.float64, device=start.device) * step[..., None]
    grid += start[..., None]
    grid[..., -1] = stop
    return grid


def _threshold_count(start: torch.Tensor, stop: torch.Tensor) -> torch.Tensor:
    return torch.ceil((stop - start) * THRESHOLDS_PER_UNIT).to(torch.long)


def _chunks(sizes: Sequence[int], budget: int) -> Iterator[list[int]]:
    """Indices grouped so that each group's count x its largest size stays within ``budget``.

    Sizes are visited in increasing order, so little padding is wasted when an
    example needs far more thresholds than the rest.
    """
    group: list[int] = []
    for index in sorted(range(len(sizes)), key=sizes.__getitem__):
        if group and (len(group) + 1) * max(sizes[index], 1) > budget:
            yield group
            group = []
        group.append(index)
    if group:
        yield group


def _best_single_threshold(
    pooled: torch.Tensor, below: torch.Tensor, table: torch.Tensor, num_models: int, budget: int
) -> torch.Tensor:
    """Largest epsilon of "confidence >= t means positive" over the pooled min..max grid.

    At threshold t, with k = #(pooled < t): false negatives are the positives
    below t, false positives the negatives at or above it, so the table entry is
    ``2N * (2N + 1) - below[k]``. An empty grid leaves t = min, where every model
    is predicted positive: a discarded attack.
    """
    low, high = pooled[:, 0], pooled[:, -1]
    counts = _threshold_count(low, high)
    best = torch.empty(pooled.shape[0], dtype=torch.float32, device=pooled.device)
    for group in _chunks(counts.tolist(), budget):
        rows = torch.tensor(group, device=pooled.device)
        width = max(int(counts[rows].max()), 1)
        thresholds = _linspace(low[rows], high[rows], counts[rows], width)
        rank = torch.searchsorted(pooled[rows], thresholds)
        index = 2 * num_models * (2 * num_models + 1) - below[rows].gather(1, rank)
        best[rows] = table.take(index).amax(dim=1)
    return best


def _best_window(
    pos: torch.Tensor,
    width: torch.Tensor,
    pooled: torch.Tensor,
    below: torch.Tensor,
    table: torch.Tensor,
    num_models: int,
    budget: int,
) -> torch.Tensor:
    """Largest epsilon of "l <= confidence <= r means positive" over the organisers' (l, r) grid.

    Right thresholds run over [pos.min + width - 2, pos.max + 2], 100 per unit;
    for each, 400 left thresholds over [r - width - 2, r - width + 2]. With
    k_r = #(pooled <= r) and k_l = #(pooled < l), the window holds the models
    ranked k_l..k_r - 1, so the table entry is ``below[k_r] - below[k_l]`` plus
    the offset of (fp = 0, fn = N). Up to ``RANKS_BEAT_SEARCH`` ranks, only the
    2N + 1 values k_l can take are scored per right threshold, those its left
    grid reaches (``_reached_left_ranks``); with more models, searching the 400
    left thresholds is cheaper. Both give the same maximum.
    """
    num_examples = pos.shape[0]
    start = pos[:, 0] + width - WINDOW_BUFFER
    stop = pos[:, -1] + WINDOW_BUFFER
    counts = _threshold_count(start, stop)
    num_right = int(counts.max())
    num_ranks = 2 * num_models + 1
    by_rank = num_ranks <= RANKS_BEAT_SEARCH
    step = max(1, budget // (num_right * (num_ranks if by_rank else NUM_LEFT_THRESHOLDS)))
    offset = num_models * (2 * num_models + 1) + num_models
    settles = by_rank and num_examples > 0 and _one_step_settles(pooled, start, stop, width)
    best = torch.empty(num_examples, dtype=torch.float32, device=pos.device)
    for first in range(0, num_examples, step):
        rows = slice(first, first + step)
        right = _linspace(start[rows], stop[rows], counts[rows], num_right)
        shifted = right - width[rows, None]
        low, high = shifted - WINDOW_BUFFER, shifted + WINDOW_BUFFER
        sorted_rows, codes = pooled[rows], below[rows]
        right_rank = torch.searchsorted(sorted_rows, right, right=True)
        right_code = (codes.gather(1, right_rank) + offset)[..., None]
        if by_rank:
            index = right_code - codes[:, None, :]
            epsilons = table.take(index).masked_fill_(
                ~_reached_left_ranks(low, high, sorted_rows, settles), -math.inf
            )
        else:
            left = _uniform_grid(low, high, NUM_LEFT_THRESHOLDS)
            left_rank = torch.searchsorted(sorted_rows, left.flatten(1))
            index = right_code - codes.gather(1, left_rank).view(left.shape)
            epsilons = table.take(index)
        best[rows] = epsilons.flatten(1).amax(dim=1)
    return best


def _one_step_settles(
    pooled: torch.Tensor, start: torch.Tensor, stop: torch.Tensor, width: torch.Tensor
) -> bool:
    """Whether one step each way settles every left grid's counts in this call.

    True when all confidences and left thresholds are below 2^40 times a lower
    bound of the grids' spacing (``_reached_left_ranks`` says why that suffices).
    Bounded once per call from the right thresholds' range, one device sync
    instead of one per chunk; a false answer only costs extra checking passes.
    """
    thresholds = torch.maximum(start.abs().amax(), stop.abs().amax()) + width.abs().amax()
    magnitude = torch.maximum(pooled.abs().amax(), thresholds + 2 * WINDOW_BUFFER)
    return bool(magnitude < _SPACING_FLOOR * 2.0**40)


# Below the left grid's spacing, 2 * WINDOW_BUFFER / 399, whatever float rounding
# does to it at the magnitudes ``_one_step_settles`` admits.
_SPACING_FLOOR = 0.99 * 2 * WINDOW_BUFFER / (NUM_LEFT_THRESHOLDS - 1)


def _reached_left_ranks(
    low: torch.Tensor, high: torch.Tensor, pooled: torch.Tensor, settles: bool
) -> torch.Tensor:
    """Which k = #(pooled < l) some left threshold l of each window's grid gives: ``[rows, R, 2N+1]``.

    The 400 left thresholds of a right threshold are ``np.linspace(low, high, 400)``
    (``_uniform_grid``'s float operations); searching each of them among the 2N
    pooled values repeats work, since the epsilon depends on l only through k.
    Rank k is given by the thresholds in (pooled[k-1], pooled[k]], so it is
    reached when the grid's count of points at or below pooled[k] exceeds that at
    pooled[k-1]. Those counts come from the grid's formula inverted, then checked
    against the grid points themselves, computed as ``_uniform_grid`` computes them,
    so a threshold lying on a confidence falls on the same side as before.
    ``settles`` (from ``_one_step_settles``) says one correction step is enough.
    """
    num = NUM_LEFT_THRESHOLDS
    spacing = ((high - low) / (num - 1))[..., None]
    low, high = low[..., None], high[..., None]
    values = pooled[:, None, :]  # [rows, 1, 2N] against grids [rows, R, 1]
    # Points j = 0..num-2 are j * spacing + low; the last is high itself. The float
    # estimate is within one point of the count unless magnitudes dwarf the spacing
    # (2^40 times it; confidences stay within a few hundred), so one step each way
    # settles it, and only such inputs check again until nothing moves.
    count = torch.floor((values - low) / spacing).add_(1).clamp_(0, num - 1)
    while True:
        grow = (count < num - 1) & (count * spacing + low <= values)
        count += grow.to(count.dtype)
        shrink = (count > 0) & ((count - 1) * spacing + low > values)
        count -= shrink.to(count.dtype)
        if settles or not (bool(grow.any()) or bool(shrink.any())):
            break
    count += (high <= values).to(count.dtype)
    rows, rights = count.shape[:2]
    bounds = torch.cat(
        [
            count.new_zeros(rows, rights, 1),
            count,
            count.new_full((rows, rights, 1), float(num)),
        ],
        dim=2,
    )
    return bounds[..., 1:] > bounds[..., :-1]

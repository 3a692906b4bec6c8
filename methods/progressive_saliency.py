"""Progressive saliency-guided unlearning: small masked rounds until the forget set looks unseen.

A research method of this project. Each round recomputes which parameters are
most tied to the forget set, moves only those to pull the forget examples'
confidences toward what an unseen example gets (estimated from the validation
set), and rehearses the retain set with the same mask; an adaptive policy steers
the forget set's mean excess over that estimate into a band and stops there.

Cost: about 4.6 retain epochs at most (``max_rounds`` = 6 rounds of 0.75 retain
epochs of rehearsal, each with a pass over the forget set and a gradient pass for
the mask; the forget set is about 2 % of the data), typically about 1.6 retain
epochs (``min_rounds`` = 2) when the signal settles at once.
"""

from __future__ import annotations

import logging
import math
import time

from torch import optim

from methods.base import BaseMethod
from methods.common import model_device
from methods.saliency import (
    collect,
    confidences,
    forget_gradient_scores,
    loader_confidences,
    perturb,
    quantile_targets,
    rehearsal,
    targeted_pass,
    top_fraction_masks,
)
from methods.search_space import IntRange, LogUniform, Uniform

LOGGER = logging.getLogger("unlearnkit.progressive_saliency")

# The last run's rounds, one dict each: what the policy saw when it decided.
ROUND_LOG: list[dict] = []


class ProgressiveSaliency(BaseMethod):
    """Rounds of saliency mask, targeted forget update and masked rehearsal, steered by a signal.

    Before the rounds: the forget set is copied once; each forget example gets a
    target confidence, the validation confidence at the same within-class rank
    (``methods.saliency.quantile_targets``), measured on the original model. The
    signal is the mean forget confidence minus the mean target: the forget set's
    excess over unseen data, in logit units, which is about 0 for a retrained model.

    Each round:

    1. Mask: the ``saliency_fraction`` of parameter entries with the largest
       |gradient| of the forget cross-entropy, ranked over the whole network.
    2. In the first round only, Gaussian noise of ``noise_scale`` x each tensor's
       standard deviation on the masked entries (retrained models differ by their
       random start; the unlearned ones need a comparable spread).
    3. While the signal is above ``band``: ``forget_passes`` passes over the forget
       set pulling confidences down to their targets (Huber loss on the excess,
       masked SGD at ``forget_lr``, eval mode, masked gradient norm at most
       ``forget_max_norm`` when set). With ``pull_mean`` only each batch's mean
       excess is penalised: pulling every example onto its own target would also
       erase the run-to-run spread the metric compares with retraining's.
    4. ``rehearsal_fraction`` of a retain epoch of masked cross-entropy at
       ``retain_lr`` in train mode: it repairs utility and, when the forget set
       was pushed below its target, brings it back up.
    5. The signal is measured again. The rounds stop when it lies within
       +-``band`` (no earlier than ``min_rounds``), after ``max_rounds``, or when
       ``time_budget_s`` seconds have passed (generous by default: a guard for
       slow hardware, not the policy).

    Every round's signal is logged (logger ``unlearnkit.progressive_saliency``,
    level INFO) and kept in the module-level ``ROUND_LOG``.
    """

    name = "progressive_saliency"
    # What `make tune` tries; min_rounds stays below max_rounds' lowest value so both always hold.
    search_space = {
        "max_rounds": IntRange(3, 8),
        "min_rounds": IntRange(1, 3),
        "band": Uniform(0.5, 2.0),
        "saliency_fraction": Uniform(0.1, 0.6),
        "noise_scale": Uniform(0.0, 0.5),
        "forget_lr": LogUniform(1e-3, 1e-1),
        "retain_lr": LogUniform(1e-3, 1e-1),
        "rehearsal_fraction": Uniform(0.25, 1.5),
    }

    def __init__(
        self,
        *,
        max_rounds: int = 6,
        min_rounds: int = 2,
        band: float = 1.0,
        saliency_fraction: float = 0.3,
        noise_scale: float = 0.25,
        forget_passes: int = 1,
        forget_lr: float = 0.01,
        retain_lr: float = 0.01,
        rehearsal_fraction: float = 0.75,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        forget_batch_size: int = 32,
        forget_max_norm: float | None = 1.0,
        pull_mean: bool = False,
        time_budget_s: float = 3600.0,
    ) -> None:
        self.max_rounds = max_rounds
        self.min_rounds = min_rounds
        self.band = band
        self.saliency_fraction = saliency_fraction
        self.noise_scale = noise_scale
        self.forget_passes = forget_passes
        self.forget_lr = forget_lr
        self.retain_lr = retain_lr
        self.rehearsal_fraction = rehearsal_fraction
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.forget_batch_size = forget_batch_size
        self.forget_max_norm = forget_max_norm
        self.pull_mean = pull_mean
        self.time_budget_s = time_budget_s

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        started = time.perf_counter()
        device = model_device(net)
        ROUND_LOG.clear()
        images, labels = collect(forget_loader, device)
        if len(labels) == 0:
            net.eval()
            return
        val_conf, val_labels = loader_confidences(net, val_loader, device)
        current = confidences(net, images, labels)
        targets = quantile_targets(current, labels, val_conf, val_labels)
        signal = float((current - targets).mean())
        forget_optimizer = optim.SGD(net.parameters(), lr=self.forget_lr, momentum=self.momentum)
        retain_optimizer = optim.SGD(net.parameters(), lr=self.retain_lr, momentum=self.momentum)
        rehearsal_batches = max(1, math.ceil(self.rehearsal_fraction * len(retain_loader)))
        for round_index in range(self.max_rounds):
            masks = top_fraction_masks(
                forget_gradient_scores(net, images, labels), self.saliency_fraction
            )
            if round_index == 0:
                perturb(net, masks, self.noise_scale)
            forget_loss = 0.0
            for _ in range(self.forget_passes if signal > self.band else 0):
                forget_loss = targeted_pass(
                    net,
                    forget_optimizer,
                    masks,
                    images,
                    labels,
                    targets,
                    self.forget_batch_size,
                    self.weight_decay,
                    self.forget_max_norm,
                    not self.pull_mean,
                )
            rehearsal(
                net,
                retain_optimizer,
                masks,
                retain_loader,
                device,
                rehearsal_batches,
                self.weight_decay,
            )
            signal = float((confidences(net, images, labels) - targets).mean())
            elapsed = time.perf_counter() - started
            ROUND_LOG.append(
                {
                    "round": round_index + 1,
                    "signal": signal,
                    "forget_loss": forget_loss,
                    "seconds": elapsed,
                }
            )
            LOGGER.info(
                "round %d: forget excess %.3f (band +-%.3f), forget loss %.4f, %.1f s",
                round_index + 1,
                signal,
                self.band,
                forget_loss,
                elapsed,
            )
            settled = abs(signal) <= self.band and round_index + 1 >= self.min_rounds
            if settled or elapsed > self.time_budget_s:
                break
        net.eval()

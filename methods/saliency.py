"""Saliency masks and retrained-like forget targets, shared by the research methods.

Everything here is a module-level function of torch and the standard library, so
the builder can inline it into a notebook. The research methods share one idea:
a model that never saw a forget example treats it like any unseen example, so
the validation set (unseen by construction) tells what the forget set's
confidences should look like after unlearning; and the parameters whose forget
gradient is largest are where the forget set left its trace, so only they move.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from methods.common import unpack_batch


def collect(loader, device) -> tuple[torch.Tensor, torch.Tensor]:
    """A loader's examples as two tensors on ``device``.

    The forget set is small (about 2 % of the data) and methods need to revisit
    each example with its own target; the competition's loaders reshuffle and
    carry no example ids, so the examples are copied once.
    """
    images, labels = [], []
    for batch in loader:
        inputs, targets = unpack_batch(batch, device)
        images.append(inputs)
        labels.append(targets)
    if not images:
        return torch.zeros(0, 3, 32, 32, device=device), torch.zeros(
            0, dtype=torch.long, device=device
        )
    return torch.cat(images), torch.cat(labels)


def margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log(p_y) - log(1 - p_y): the competition's logit-scaled confidence, differentiable.

    Equal to the true logit minus the log-sum-exp of the others, which is exact
    and stable without flooring.
    """
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - torch.logsumexp(others, dim=1)


@torch.no_grad()
def confidences(
    net, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Eval-mode margins of ``images``: what the metric measures on a finished model."""
    was_training = net.training
    net.eval()
    chunks = [
        margin(net(images[i : i + batch_size]).float(), labels[i : i + batch_size])
        for i in range(0, len(labels), batch_size)
    ]
    net.train(was_training)
    if not chunks:
        return torch.zeros(0, device=labels.device)
    return torch.cat(chunks)


@torch.no_grad()
def loader_confidences(net, loader, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode margins and labels over a whole loader, without keeping its images."""
    was_training = net.training
    net.eval()
    margins, labels = [], []
    for batch in loader:
        inputs, targets = unpack_batch(batch, device)
        margins.append(margin(net(inputs).float(), targets))
        labels.append(targets)
    net.train(was_training)
    if not margins:
        return torch.zeros(0, device=device), torch.zeros(0, dtype=torch.long, device=device)
    return torch.cat(margins), torch.cat(labels)


def quantile_targets(
    forget_conf: torch.Tensor,
    forget_labels: torch.Tensor,
    val_conf: torch.Tensor,
    val_labels: torch.Tensor,
    min_class_examples: int = 5,
) -> torch.Tensor:
    """Per forget example, the validation confidence at the same within-class quantile.

    A retrained model sees a forget example as unseen data, so the forget set's
    confidences should follow the validation set's distribution; mapping by rank
    keeps hard examples harder than easy ones, as they are for the retrained
    models. Classes with fewer than ``min_class_examples`` validation examples
    use the whole validation set. Targets never exceed the current confidence:
    unlearning lowers what the model learnt, it does not teach.
    """
    targets = forget_conf.clone()
    if len(val_conf) == 0:
        return targets
    everything = torch.sort(val_conf).values
    for label in torch.unique(forget_labels).tolist():
        members = torch.nonzero(forget_labels == label).flatten()
        reference = torch.sort(val_conf[val_labels == label]).values
        if len(reference) < min_class_examples:
            reference = everything
        ranks = torch.argsort(torch.argsort(forget_conf[members]))
        quantiles = (ranks.float() + 0.5) / len(members)
        positions = (quantiles * (len(reference) - 1)).round().long()
        targets[members] = reference[positions]
    return torch.minimum(targets, forget_conf)


def forget_gradient_scores(
    net, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256
) -> list[torch.Tensor]:
    """|gradient| of the summed forget cross-entropy per parameter entry, in eval mode.

    Eval mode keeps BatchNorm statistics untouched by the measurement.
    """
    was_training = net.training
    net.eval()
    net.zero_grad(set_to_none=True)
    for i in range(0, len(labels), batch_size):
        F.cross_entropy(
            net(images[i : i + batch_size]), labels[i : i + batch_size], reduction="sum"
        ).backward()
    scores = [
        p.grad.detach().abs() if p.grad is not None else torch.zeros_like(p)
        for p in net.parameters()
    ]
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return scores


def top_fraction_masks(scores: list[torch.Tensor], fraction: float) -> list[torch.Tensor]:
    """Boolean masks selecting the ``fraction`` of entries with the largest score, ranked globally.

    Entries scoring exactly zero are never selected: no gradient reached them, so
    they carry none of the forget set's trace.
    """
    flat = torch.cat([s.flatten().float() for s in scores])
    keep = min(int(round(fraction * flat.numel())), flat.numel())
    if keep <= 0:
        return [torch.zeros_like(s, dtype=torch.bool) for s in scores]
    threshold = torch.kthvalue(flat.cpu(), flat.numel() - keep + 1).values.item()
    return [(s >= threshold) & (s > 0) for s in scores]


def normalised(scores: list[torch.Tensor]) -> list[torch.Tensor]:
    """Scores divided by their total, so maps from forget sets of different sizes can be added."""
    total = sum(float(s.sum()) for s in scores)
    if total <= 0:
        return [s.clone() for s in scores]
    return [s / total for s in scores]


@torch.no_grad()
def perturb(net, masks: list[torch.Tensor], scale: float) -> None:
    """Gaussian noise on masked entries, ``scale`` times each tensor's own standard deviation.

    Retrained models differ from each other by their random start; without a
    comparable spread the unlearned models' confidences are too alike, and the
    metric's attacks separate them from the retrained ones at once.
    """
    if scale <= 0:
        return
    for parameter, mask in zip(net.parameters(), masks):
        if parameter.ndim < 2 or not bool(mask.any()):
            continue
        spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
        noise = torch.randn(parameter.shape, device=parameter.device) * (scale * spread)
        parameter.add_(noise * mask)


def masked_step(
    net,
    optimizer,
    masks: list[torch.Tensor],
    loss: torch.Tensor,
    weight_decay: float,
    max_norm: float | None = None,
) -> None:
    """One SGD step that changes only masked entries (weight decay included, so frozen ones stay exact).

    With ``max_norm`` the masked gradient is rescaled to at most that norm: the
    forget-confidence gradient of an overconfident model can be a hundred times
    the retain loss's, and one such step undoes what training built.
    """
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    with torch.no_grad():
        grads = []
        for parameter, mask in zip(net.parameters(), masks):
            if parameter.grad is not None:
                parameter.grad.add_(parameter, alpha=weight_decay).mul_(mask)
                grads.append(parameter.grad)
        if max_norm is not None and grads:
            norm = torch.sqrt(sum((g.double() ** 2).sum() for g in grads))
            if float(norm) > max_norm:
                for g in grads:
                    g.mul_(max_norm / float(norm))
    optimizer.step()


def targeted_pass(
    net,
    optimizer,
    masks: list[torch.Tensor],
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    batch_size: int,
    weight_decay: float,
    max_norm: float | None = None,
    per_example: bool = True,
) -> float:
    """One shuffled pass pulling each forget example's confidence down to its target.

    Runs in eval mode, so the confidence being trained is the one the metric
    reads and BatchNorm statistics are not fitted to the forget set. Only
    confidences above their target are penalised, with a Huber loss so that a
    far-off example (an untrained or saturated model) cannot blow the weights
    up. With ``per_example`` False only the batch's mean excess is penalised,
    which moves the forget set as a whole and keeps how examples differ (and how
    runs differ) intact. Returns the mean loss.
    """
    net.eval()
    order = torch.randperm(len(labels), device=labels.device)
    total, batches = 0.0, 0
    for i in range(0, len(order), batch_size):
        chosen = order[i : i + batch_size]
        gaps = margin(net(images[chosen]), labels[chosen]) - targets[chosen]
        excess = F.relu(gaps if per_example else gaps.mean(dim=0, keepdim=True))
        loss = F.smooth_l1_loss(excess, torch.zeros_like(excess))
        masked_step(net, optimizer, masks, loss, weight_decay, max_norm)
        total += float(loss.detach())
        batches += 1
    return total / max(batches, 1)


def rehearsal(
    net,
    optimizer,
    masks: list[torch.Tensor],
    retain_loader,
    device,
    max_batches: int,
    weight_decay: float,
) -> int:
    """``max_batches`` masked cross-entropy steps on the retain set in train mode.

    Passes over the loader as often as needed; one-example batches are skipped
    (BatchNorm cannot normalise them). Returns the steps taken.
    """
    net.train()
    steps = 0
    while steps < max_batches:
        taken = steps
        for batch in retain_loader:
            if steps >= max_batches:
                break
            inputs, labels = unpack_batch(batch, device)
            if inputs.shape[0] < 2:
                continue
            masked_step(net, optimizer, masks, F.cross_entropy(net(inputs), labels), weight_decay)
            steps += 1
        if steps == taken:
            break
    return steps


def weights_fingerprint(net) -> tuple:
    """A key that changes whenever any weight or BatchNorm statistic does.

    Lets a method find the state it left behind on exactly this model: the next
    request starts from the model the last one returned, while a fresh copy of
    the original (every call in the competition notebook) matches nothing.
    """
    with torch.no_grad():
        return tuple(
            (name, tuple(t.shape), float(t.double().sum()), float(t.double().abs().sum()))
            for name, t in net.state_dict().items()
            if t.is_floating_point()
        )

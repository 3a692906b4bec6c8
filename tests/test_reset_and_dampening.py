"""SSD dampens only what the forget set needs; reset_recalibrate resets, then recalibrates by measurement."""

from __future__ import annotations

import torch
from torch import nn

from methods.reset_recalibrate import SCALES, best_scale, reset_smallest
from methods.saliency import margin
from methods.ssd import Ssd


def loader(images, labels, batch=8):
    return [{"image": images[i : i + batch], "age_group": labels[i : i + batch]} for i in range(0, len(labels), batch)]


def test_ssd_never_grows_a_weight_and_shrinks_some():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    before = [p.detach().clone() for p in net.parameters()]
    retain = loader(torch.randn(64, 12), torch.randint(0, 3, (64,)))
    forget = loader(torch.randn(8, 12) * 5, torch.randint(0, 3, (8,)))
    Ssd(selection=1.0).run(net, retain, forget, retain)
    after = list(net.parameters())
    assert all((a.abs() <= b.abs() + 1e-7).all() for a, b in zip(after, before))
    assert any((a.abs() < b.abs()).any() for a, b in zip(after, before))


def test_reset_smallest_redraws_the_asked_fraction_of_entries():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 30 * 30, 10))
    before = [p.detach().clone() for p in net.parameters()]
    reset_smallest(net, 0.5)
    changed = sum(int((a != b).sum()) for a, b in zip(net.parameters(), before))
    total = sum(p.numel() for p in before)
    assert abs(changed / total - 0.5) < 0.01


def test_recalibration_picks_the_scale_that_meets_the_target_and_keeps_every_prediction():
    torch.manual_seed(0)
    logits = torch.randn(40, 10) * 3
    labels = logits.argmax(dim=1)
    target = float(margin(2.0 * logits, labels).mean())
    scale = best_scale(logits, labels, target)
    assert scale == min(SCALES, key=lambda s: abs(s - 2.0))
    assert torch.equal((scale * logits).argmax(dim=1), logits.argmax(dim=1))

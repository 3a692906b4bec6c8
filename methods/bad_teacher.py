"""Bad Teacher: distil from a competent and an incompetent teacher (Chundawat et al., AAAI 2023).

The student (the model being unlearned) is pulled towards the original model's
outputs on retain data and towards an *incompetent* teacher's outputs on forget
data, so forget examples end up predicted like data the model never learnt.

The incompetent teacher is a small randomly initialised network shipped as an
asset (``bad_teacher_incompetent.pt``, written by ``build_assets``) rather than
drawn at run time: every one of the competition's unlearning calls, on any
device, then distils from the same teacher, and its notebook proves that
bundled files reach the offline Kaggle run.

Cost: one pass over the forget set and ``retain_fraction`` of the retain set,
each step with one extra forward pass of the original model.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn, optim

from methods.base import BaseMethod
from methods.common import asset_path, model_device, unpack_batch


class BadTeacher(BaseMethod):
    """KL distillation: original model on retain batches, bundled random teacher on forget batches."""

    name = "bad_teacher"
    teacher_file = "bad_teacher_incompetent.pt"
    assets = (teacher_file,)  # written by build_assets, not committed
    teacher_classes = 100  # the model's classes use the first logits: any count up to 100 works
    teacher_seed = 20231

    def __init__(
        self,
        epochs: int = 1,
        lr: float = 1e-3,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        temperature: float = 1.0,
        retain_fraction: float = 0.3,
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.temperature = temperature
        self.retain_fraction = retain_fraction

    @staticmethod
    def incompetent_teacher(num_classes: int) -> nn.Sequential:
        """A linear classifier on 8x8 thumbnails: any image size, almost no capacity."""
        return nn.Sequential(
            nn.AdaptiveAvgPool2d(8), nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes)
        )

    @staticmethod
    def build_assets(dest_dir: str) -> None:
        """Write the seeded incompetent teacher; packaging and local scoring call this."""
        generator_state = torch.random.get_rng_state()
        try:
            torch.manual_seed(BadTeacher.teacher_seed)
            teacher = BadTeacher.incompetent_teacher(BadTeacher.teacher_classes)
        finally:
            torch.random.set_rng_state(generator_state)
        payload = {"num_classes": BadTeacher.teacher_classes, "state_dict": teacher.state_dict()}
        torch.save(payload, f"{dest_dir}/{BadTeacher.teacher_file}")

    def load_incompetent_teacher(self, device: torch.device) -> nn.Module:
        payload = torch.load(asset_path(self.teacher_file), map_location=device, weights_only=True)
        teacher = self.incompetent_teacher(int(payload["num_classes"]))
        teacher.load_state_dict(payload["state_dict"])
        return teacher.to(device).eval()

    def distill_step(self, net, teacher, inputs, optimizer, teacher_scale: float) -> None:
        logits = net(inputs)
        with torch.no_grad():
            teacher_logits = teacher(inputs * teacher_scale)
        if logits.shape[1] > teacher_logits.shape[1]:
            raise ValueError(
                f"the model predicts {logits.shape[1]} classes but the bundled teacher "
                f"{self.teacher_file} only {teacher_logits.shape[1]}; raise teacher_classes "
                "and rebuild the assets"
            )
        target = F.softmax(teacher_logits[:, : logits.shape[1]] / self.temperature, dim=1)
        loss = F.kl_div(
            F.log_softmax(logits / self.temperature, dim=1), target, reduction="batchmean"
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    def run(self, net, retain_loader, forget_loader, val_loader) -> None:
        device = model_device(net)
        competent = copy.deepcopy(net).eval()
        incompetent = self.load_incompetent_teacher(device)
        optimizer = optim.SGD(
            net.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay
        )
        retain_steps = max(1, int(len(retain_loader) * self.retain_fraction))
        net.train()
        for _ in range(self.epochs):
            # Images arrive as 0..255; the random teacher expects 0..1 so its outputs stay soft.
            for batch in forget_loader:
                inputs, _ = unpack_batch(batch, device)
                self.distill_step(net, incompetent, inputs, optimizer, 1.0 / 255.0)
            for step, batch in enumerate(retain_loader):
                if step >= retain_steps:
                    break
                inputs, _ = unpack_batch(batch, device)
                self.distill_step(net, competent, inputs, optimizer, 1.0)
        net.eval()

import torch as T
import torch.nn.functional as F
from torch import optim as optimisers

from methods import base as base_module
from methods.common import unpack_batch as unpack

from .corpus_helpers import Momentum, scaled, soft_targets


class HelperClassAndAliases(base_module.BaseMethod):
    name = "corpus_helper_class"

    def __init__(self, lr: float = 0.02, beta: float = 0.8):
        super().__init__()
        self.lr = lr
        self.beta = beta

    def run(self, net, retain_loader, forget_loader, val_loader):
        device = next(net.parameters()).device
        opt = optimisers.SGD(net.parameters(), lr=scaled(self.lr))
        tracker = Momentum(self.beta)
        net.train()
        for batch in forget_loader:
            inputs, _ = unpack(batch, device)
            logits = net(inputs)
            uniform = T.full_like(logits, 1.0 / logits.shape[1])
            loss = F.kl_div(F.log_softmax(logits, 1), uniform, reduction="batchmean")
            loss = loss + 0.0 * soft_targets(logits).sum()
            tracker.update(loss.item())
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()

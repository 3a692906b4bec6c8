from torch.nn.functional import *  # noqa: F403

from methods.base import BaseMethod


class StarImport(BaseMethod):
    name = "star_import"

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.eval()

import copy

from methods.base import BaseMethod


class RebindNet(BaseMethod):
    name = "rebind_net"

    def run(self, net, retain_loader, forget_loader, val_loader):
        net = copy.deepcopy(net)
        net.eval()

from methods.base import BaseMethod


class GetattrSelf(BaseMethod):
    name = "getattr_self"

    def __init__(self, lr=0.1):
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        print(getattr(self, "lr"))
        net.eval()

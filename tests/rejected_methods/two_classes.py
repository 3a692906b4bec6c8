from methods.base import BaseMethod


class First(BaseMethod):
    name = "first"

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.eval()


class Second(BaseMethod):
    name = "second"

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.train()
        net.eval()

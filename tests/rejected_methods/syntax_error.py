from methods.base import BaseMethod


class Broken(BaseMethod):
    name = "broken"

    def run(self, net, retain_loader, forget_loader, val_loader)
        net.eval()

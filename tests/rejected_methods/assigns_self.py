from methods.base import BaseMethod


class AssignsSelf(BaseMethod):
    name = "assigns_self"

    def __init__(self, lr=0.1):
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        self.lr = self.lr / 2
        net.eval()

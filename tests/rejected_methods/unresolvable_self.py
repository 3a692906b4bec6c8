from methods.base import BaseMethod


class UnresolvableSelf(BaseMethod):
    name = "unresolvable_self"

    def __init__(self, lr=0.1):
        self.lr = lr

    def run(self, net, retain_loader, forget_loader, val_loader):
        print(self.learning_rate)
        net.eval()

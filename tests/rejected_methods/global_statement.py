from methods.base import BaseMethod

CALLS = 0


class GlobalStatement(BaseMethod):
    name = "global_statement"

    def run(self, net, retain_loader, forget_loader, val_loader):
        global CALLS
        CALLS += 1
        net.eval()

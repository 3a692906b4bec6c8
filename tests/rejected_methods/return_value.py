from methods.base import BaseMethod


class ReturnValue(BaseMethod):
    name = "return_value"

    def run(self, net, retain_loader, forget_loader, val_loader):
        net.eval()
        return net

from methods.base import BaseMethod


def describe(method):
    return repr(method)


class SelfAsValue(BaseMethod):
    name = "self_as_value"

    def run(self, net, retain_loader, forget_loader, val_loader):
        describe(self)
        net.eval()

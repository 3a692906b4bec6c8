from methods.base import BaseMethod


class ExtraParameter(BaseMethod):
    name = "extra_parameter"

    def run(self, net, retain_loader, forget_loader, val_loader, phase):
        net.eval()

from methods.finetune import Finetune


class SuperInRun(Finetune):
    name = "super_in_run"

    def run(self, net, retain_loader, forget_loader, val_loader):
        super().run(net, retain_loader, forget_loader, val_loader)

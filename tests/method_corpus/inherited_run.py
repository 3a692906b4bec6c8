from methods.finetune import Finetune


class InheritedRun(Finetune):
    """run() comes from the base class; only hyperparameters change."""

    name = "corpus_inherited"

    def __init__(self, lr=0.05, epochs=2):
        super().__init__(lr=lr, epochs=epochs)

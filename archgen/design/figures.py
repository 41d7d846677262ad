"""The computed figures a design space constrains, optimises and reports, and what each counts."""

from __future__ import annotations

from typing import NamedTuple

#: Figure -> what it counts (the counter's conventions: archgen.complexity).
FIGURES = {
    "params": "parameters",
    "macs": "multiply-accumulates of convs and linear layers (the papers' 'FLOPs')",
    "flops": "2 x macs",
    "acts": "output elements of every conv and linear layer",
    "depth": "conv and linear layers on the longest path: stem convs, each block's branch convs, the classifier "
             "(shortcut convs excluded; ResNet-50 is 50, ResNet-18 18)",
    "latency": "predicted milliseconds of one forward pass, from a latency model's kernels (archgen search "
               "--latency DEVICE.json; make the model with archgen calibrate)",
}
#: Figures predicted by a latency model rather than counted from the plan.
PREDICTED = frozenset({"latency"})


class Figures(NamedTuple):
    """One network's figures (a named tuple: the search makes one per candidate)."""

    params: int
    macs: int
    acts: int
    depth: int
    #: Predicted ms, where a search was given a latency model (and the candidate met the counted constraints).
    latency: float | None = None

    @property
    def flops(self) -> int:
        return 2 * self.macs

    def get(self, name: str) -> int:
        return getattr(self, name)

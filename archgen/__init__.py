"""archgen: compile declarative YAML specs of ResNet-family networks into PyTorch.

Public API: `load_spec`, `build`, `profile`, `SpecError`, and
`archgen.interop.load_torchvision_state_dict`. Torch is imported only when a
function that needs it is called, so `archgen --help` stays fast.
"""

from __future__ import annotations

from typing import Any

from archgen.errors import SpecError
from archgen.spec.loader import Spec, load_spec

__all__ = ["SpecError", "Spec", "load_spec", "build", "profile", "plan"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "build":
        from archgen.builder import build

        return build
    if name == "profile":
        from archgen.complexity import profile

        return profile
    if name == "plan":
        from archgen.planner import plan

        return plan
    raise AttributeError(f"module 'archgen' has no attribute {name!r}")

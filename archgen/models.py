"""timm's entry points: `list_models` and `create_model` over a registry of specs.

The registry is the bundled specs plus the `*.yaml` files in the directories that
`ARCHGEN_SPEC_PATH` lists (separated by os.pathsep), each named by its file name.
Every option of `create_model` that changes the architecture is written into the
spec before it is validated and built, so counts, tables and the model agree.
"""

from __future__ import annotations

import copy
import fnmatch
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from archgen.errors import SpecError, UserError
from archgen.grammar.loader import Spec, bundled_dir, load_spec, merge

if TYPE_CHECKING:
    import torch.nn as nn

#: The environment variable listing users' spec directories.
SPEC_PATH_ENV = "ARCHGEN_SPEC_PATH"


def registry() -> dict[str, Path]:
    """Model name -> spec file: bundled specs first, then ARCHGEN_SPEC_PATH's directories in order.

    A name defined twice is refused, naming both files, rather than one silently shadowing the other.
    """
    found: dict[str, Path] = {}
    dirs = [bundled_dir()]
    for entry in os.environ.get(SPEC_PATH_ENV, "").split(os.pathsep):
        if not entry:
            continue
        if not Path(entry).is_dir():
            raise UserError(f"{SPEC_PATH_ENV} lists '{entry}', which is not a directory")
        dirs.append(Path(entry))
    for directory in dirs:
        for file in sorted(directory.glob("*.yaml")):
            if file.stem in found and found[file.stem].resolve() != file.resolve():
                raise UserError(f"two specs are named '{file.stem}': {found[file.stem]} and {file}; rename one "
                                f"(a spec's name in the registry is its file name)")
            found[file.stem] = file
    return found


def list_models(pattern: str = "*") -> list[str]:
    """The registered model names matching a shell-style pattern (`resnet*`, `*_cifar`), sorted."""
    return sorted(name for name in registry() if fnmatch.fnmatchcase(name, pattern))


def _locate(ref: str | os.PathLike) -> str | os.PathLike:
    """A registered name -> its file; anything else (a path, a short bundled name) as it is."""
    return registry().get(os.fspath(ref), ref)


def _override_mapping(num_classes: Optional[int], in_chans: Optional[int], drop_path_rate: Optional[float],
                      spec_overrides: Mapping[str, Any]) -> dict:
    overrides: dict[str, Any] = copy.deepcopy(dict(spec_overrides))
    if num_classes is not None:
        overrides.setdefault("head", {})["classes"] = num_classes
    if in_chans is not None:
        overrides.setdefault("input", {})["channels"] = in_chans
    if drop_path_rate is not None:
        if not 0 <= drop_path_rate < 1:
            raise UserError(f"drop_path_rate must be in [0, 1), not {drop_path_rate}")
        # timm's convention: the rate grows linearly from 0 at the first block to drop_path_rate at the
        # last, each sample's branch is dropped apart, and survivors are scaled by 1/p while training.
        # 0 turns stochastic depth off.
        overrides["stochastic_depth"] = None if drop_path_rate == 0 else {
            "final_survival": 1 - drop_path_rate, "rule": "linear_span", "inverted": True, "per_sample": True}
    return overrides


def resolve_spec(spec: str | os.PathLike | Mapping | Spec, *, num_classes: Optional[int] = None,
                 in_chans: Optional[int] = None, drop_path_rate: Optional[float] = None,
                 **spec_overrides: Any) -> Spec:
    """The validated spec `create_model` builds: the named spec with every override written into it
    (a file or name is extended by a mapping of the overrides, so `extends`' merge rule applies)."""
    overrides = _override_mapping(num_classes, in_chans, drop_path_rate, spec_overrides)
    if isinstance(spec, Spec):
        if not overrides:
            return spec
        if not Path(spec.file).is_file():
            raise UserError(f"cannot apply overrides to the Spec '{spec.name}', which was not read from a file; "
                            "pass the mapping it was made from instead")
        spec = spec.file
    if isinstance(spec, Mapping):
        doc = merge(copy.deepcopy(dict(spec)), overrides, {}, {})[0]
    elif overrides:
        doc = {"extends": os.fspath(_locate(spec)), **overrides}
    else:
        return load_spec(_locate(spec))  # straight from the file, so errors point at its lines
    try:
        return load_spec(doc)
    except SpecError as exc:
        raise SpecError(f"{exc.message} (after the overrides {sorted(overrides)})", field=exc.field,
                        path=None if isinstance(spec, Mapping) else os.fspath(spec)) from None


def create_model(model: str | os.PathLike | Mapping | Spec, pretrained: bool | str | os.PathLike | None = False, *,
                 num_classes: Optional[int] = None, in_chans: Optional[int] = None, features_only: bool = False,
                 out_indices: Optional[int | Sequence[int]] = None, drop_path_rate: Optional[float] = None,
                 pretrained_layout: str = "auto", **spec_overrides: Any) -> nn.Module:
    """A model by registered name, spec file, mapping or Spec, as timm's `create_model` makes one.

    num_classes -> head.classes, in_chans -> input.channels, drop_path_rate -> stochastic depth
    (linear, final_survival = 1 - rate, inverted scaling); other keywords are nested spec fields
    (`multipliers={"width": 1.5}`). `pretrained=False` (or None) leaves the initialisation; archgen
    downloads nothing, so `pretrained=True` is refused, and a weights file in its place is loaded by
    name (`pretrained_layout`: archgen, torchvision, timm, or auto); with `num_classes` its classifier
    is left out, as when fine-tuning. `features_only` returns a FeatureListNet of the maps
    `out_indices` chooses, numbered as timm numbers them (0 is the stem's map, 1.. the stages').
    """
    from archgen.builder import build
    from archgen.network import FeatureListNet

    if pretrained is True:
        raise UserError("pretrained=True asks for downloaded weights, and archgen downloads none: load a checkpoint "
                        "you have by name with archgen.load_weights(model, FILE, layout='torchvision'|'timm'|"
                        "'archgen'|'auto'), or pass pretrained=FILE here (on the command line, --weights FILE: "
                        "archgen export SPEC --weights FILE ...)")
    if out_indices is not None and not features_only:
        raise UserError("out_indices chooses the feature maps of features_only=True; pass both")
    spec = resolve_spec(model, num_classes=num_classes, in_chans=in_chans, drop_path_rate=drop_path_rate,
                        **spec_overrides)
    net = build(spec)
    if pretrained:
        from archgen.weights import load_weights

        load_weights(net, pretrained, pretrained_layout, ignore_classifier=num_classes is not None)
    if features_only:
        return FeatureListNet(net, out_indices)
    return net

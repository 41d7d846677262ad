"""Weights in and out by name: explicit key maps from torchvision's and timm's layouts to archgen's
module names, strict loading that changes nothing unless everything fits, and saving to
`.safetensors` (for sharing) or `.pt` (a plain state dict).

archgen names its modules `stem.conv1`/`stem.bn1` (a deep stem: `conv1..3`, `bn1..3`), stages
`layer{i}.{j}` with torchvision's block names (`conv1`, `bn1`, ..., `downsample.{0,1}`; DenseNet's
`norm1`, `conv1`, ... and the transition as `layer{i}.0` for i > 1; VGG's `layer{i}.{j}.conv`, `.bn`,
`.act`, a stage's max-pool its last block) and the head `head.norm`, `head.hidden.{0,3}` (VGG's),
`head.fc`. A layout is a short list of rules (regex -> replacement), some read from the model (VGG's
numbered `features`), that rewrites a checkpoint's keys into these names; a key no rule touches is
kept as it is (the stages already agree).

Loading never unpickles arbitrary objects (`torch.load(..., weights_only=True)`), and a
checkpoint that does not fit names what is missing, unexpected and mis-shaped, grouped by
module, and loads nothing.
"""

from __future__ import annotations

import io
import os
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn

from archgen.errors import UserError

#: A checkpoint: a file, or a state dict already in memory.
WeightsSource = Union[str, os.PathLike, Mapping[str, torch.Tensor]]

#: The suffixes read and written; anything else is refused rather than guessed.
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"

#: Groups shown in full in a mismatch message; the rest are counted.
MAX_GROUPS_SHOWN = 8


class WeightsError(UserError):
    """A checkpoint that cannot be read as a state dict: missing, truncated, not tensors, a lying header."""


class WeightsMismatch(WeightsError):
    """A state dict whose keys or shapes do not fit the model; carries the offending keys (archgen names)."""

    def __init__(self, message: str, *, missing: list[str], unexpected: list[str], mis_shaped: list[str]) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mis_shaped = mis_shaped


Rule = tuple[str, Union[str, Callable[[re.Match], str]]]


def _densenet_layer(m: re.Match) -> str:
    # torchvision numbers dense layers from 1 within each block; archgen's stage i > 1 starts with
    # the transition at index 0, so denselayer{j} sits at layer{i}.{j}, and at layer1.{j-1} in stage 1.
    block, layer = int(m[1]), int(m[2])
    return f"layer{block}.{layer - 1 if block == 1 else layer}."


#: Rules shared by torchvision's ResNet family and timm's ResNet: the stem's conv1/bn1 and fc.
_RESNET_RULES: list[Rule] = [
    (r"^conv1\.", "stem.conv1."),
    (r"^bn1\.", "stem.bn1."),
    (r"^fc\.", "head.fc."),
]

#: torchvision's DenseNet: everything under `features`, transitions between blocks, `classifier`.
_DENSENET_RULES: list[Rule] = [
    (r"^features\.conv0\.", "stem.conv1."),
    (r"^features\.norm0\.", "stem.bn1."),
    (r"^features\.denseblock(\d+)\.denselayer(\d+)\.", _densenet_layer),
    (r"^features\.transition(\d+)\.", lambda m: f"layer{int(m[1]) + 1}.0."),
    (r"^features\.norm5\.", "head.norm."),
    (r"^classifier\.", "head.fc."),
]

#: timm's deep stem (ResNet-C/D) is one Sequential `conv1` = conv, bn, act, conv, bn, act, conv;
#: its last BN is the top-level `bn1`, which is archgen's `stem.bn3`.
_TIMM_DEEP_STEM_RULES: list[Rule] = [
    (r"^conv1\.0\.", "stem.conv1."),
    (r"^conv1\.1\.", "stem.bn1."),
    (r"^conv1\.3\.", "stem.conv2."),
    (r"^conv1\.4\.", "stem.bn2."),
    (r"^conv1\.6\.", "stem.conv3."),
    (r"^bn1\.", "stem.bn3."),
]


def _block_key(tail: str, first_block: int, conv_names: Optional[dict[str, str]] = None
               ) -> Callable[[re.Match], str]:
    """A RegNet block's key in archgen's layout, `layer{i}.{j}.` + tail, from a match of (stage, block[, conv]).

    Checkpoints number blocks from `first_block` (timm's b1.., torchvision's block{i}-0..) where archgen counts
    from 0; `{k}` in the tail is the conv's number, through `conv_names` (torchvision's f.a/b/c are 1, 2, 3)."""
    def rename(m: re.Match) -> str:
        head = f"layer{int(m[1])}.{int(m[2]) - first_block}."
        return head + (tail.format(k=(conv_names or {}).get(m[3], m[3])) if "{k}" in tail else tail)

    return rename


#: timm's RegNet: `stem.conv`/`stem.bn`, blocks `s{i}.b{j}` whose convs are ConvNormAct(`conv`, `bn`), the
#: projection `downsample.conv`/`.bn`, SE `se.fc1`/`fc2`, and `head.fc` (archgen's name already).
_TIMM_REGNET_RULES: list[Rule] = [
    (r"^stem\.conv\.", "stem.conv1."),
    (r"^stem\.bn\.", "stem.bn1."),
    (r"^s(\d+)\.b(\d+)\.conv(\d)\.conv\.", _block_key("conv{k}.", 1)),
    (r"^s(\d+)\.b(\d+)\.conv(\d)\.bn\.", _block_key("bn{k}.", 1)),
    (r"^s(\d+)\.b(\d+)\.downsample\.conv\.", _block_key("downsample.0.", 1)),
    (r"^s(\d+)\.b(\d+)\.downsample\.bn\.", _block_key("downsample.1.", 1)),
    (r"^s(\d+)\.b(\d+)\.se\.", _block_key("se.", 1)),
]

#: torchvision's RegNet branch `f.a`, `f.b`, `f.c`: archgen's conv1..3.
_TORCHVISION_CONVS = {"a": "1", "b": "2", "c": "3"}

#: torchvision's RegNet: `stem.0`/`stem.1`, blocks' `f.a`, `f.b`, `f.se`, `f.c` and the projection `proj`.
_TORCHVISION_REGNET_RULES: list[Rule] = [
    (r"^stem\.0\.", "stem.conv1."),
    (r"^stem\.1\.", "stem.bn1."),
    (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.f\.([abc])\.0\.", _block_key("conv{k}.", 0, _TORCHVISION_CONVS)),
    (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.f\.([abc])\.1\.", _block_key("bn{k}.", 0, _TORCHVISION_CONVS)),
    (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.f\.se\.", _block_key("se.", 0)),
    (r"^trunk_output\.block(\d+)\.block\d+-(\d+)\.proj\.", _block_key("downsample.", 0)),
]

def _features_layer(model: nn.Module) -> Callable[[re.Match], str]:
    """torchvision's and timm's VGG keep every layer in one Sequential `features` (conv, [bn], relu, ...,
    max-pool), numbered in order; archgen groups the same layers into stages of blocks, so the n-th layer
    met in order (a pool block counted too) is `features.n`."""
    names = [f"{stage}.{j}.{layer}" for stage in model.stage_names for j, block in enumerate(getattr(model, stage))
             for layer in block.pre_names + block.branch_names]
    return lambda m: f"{names[int(m[1])]}." if int(m[1]) < len(names) else m[0]


def _classifier_layer(model: nn.Module) -> Callable[[re.Match], str]:
    """torchvision's VGG `classifier` (fc, relu, dropout, fc, relu, dropout, fc): archgen's head numbers its
    hidden layers the same way, and the last fc, after the last dropout (`head.drop`), is `head.fc`."""
    hidden = len(model.head.hidden)
    return lambda m: f"head.hidden.{m[1]}." if int(m[1]) < hidden else "head.fc." if int(m[1]) == hidden + 1 else m[0]


def _vgg_rules(model: nn.Module, pre_logits: bool) -> list[Rule]:
    """The VGG rules, for a network without a stem (all its layers in `features`), none for any other.
    timm's VGG holds the first two classifier layers in `pre_logits` as convs (fc1: 7x7 over the map, fc2: 1x1),
    which `_CONV_AS_LINEAR` flattens into archgen's linear layers."""
    if not (hasattr(model, "stage_names") and hasattr(model, "stem") and not model.stem.branch_names):
        return []
    rules: list[Rule] = [(r"^features\.(\d+)\.", _features_layer(model))]
    if pre_logits:
        rules.append((r"^pre_logits\.fc(\d)\.", lambda m: f"head.hidden.{3 * (int(m[1]) - 1)}."))
    elif hasattr(model, "head") and hasattr(model.head, "hidden"):
        rules.append((r"^classifier\.(\d+)\.", _classifier_layer(model)))
    return rules


#: timm's checkpoint keys whose convs are archgen's linear layers: VGG's pre_logits, a conv over the whole map
#: (fc1, 7x7) and a 1x1 conv (fc2). Flattened (out, in, kh, kw) -> (out, in * kh * kw), in the order in which
#: a linear layer reads the flattened map (channel, row, column), they compute the same function.
_CONV_AS_LINEAR = {"timm": re.compile(r"^pre_logits\.fc\d\.weight$")}


def _has_module(model: nn.Module, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True


def _blocks_in_order(ours: set[str]) -> list[str]:
    """archgen's block prefixes `layer{i}.{j}` in network order."""
    found = {(int(m[1]), int(m[2])) for m in (re.match(r"^layer(\d+)\.(\d+)\.", k) for k in ours) if m}
    return [f"layer{i}.{j}" for i, j in sorted(found)]


def _torchvision_mobile_rules(ours: set[str]) -> list[Rule]:
    """torchvision's MobileNetV2/V3 and EfficientNet: `features.0` is the stem and the last `features` entry
    the head's 1x1 conv (each a conv-norm-act Sequential, `.0` conv, `.1` norm); between them
    MobileNets number their blocks through the network (`features.{k}`, archgen's k-th block) and EfficientNet
    by stage (`features.{i}.{j}`, archgen's layer{i}.{j}). A block's Sequential (`conv` in V2, `block`
    otherwise) holds its units in order, each a conv-norm-act (`.0`, `.1`) or the SE (`fc1`, `fc2`), except
    V2's projection, a bare conv then a bare norm; the expansion unit exists where archgen's conv1 does. A key
    naming a block or unit the model lacks is kept as it is, so the mismatch report names it."""
    blocks = _blocks_in_order(ours)
    if not blocks or "head.conv.weight" not in ours:
        return []

    def in_block(m: re.Match) -> str:
        if m[2] is None and not 1 <= int(m[1]) <= len(blocks):
            return m[0]
        prefix = f"layer{int(m[1])}.{int(m[2])}" if m[2] is not None else blocks[int(m[1]) - 1]
        units = (["1"] if f"{prefix}.conv1.weight" in ours else []) + ["2"]
        units += (["se"] if f"{prefix}.se.fc1.weight" in ours else [])
        units += ["conv3", "bn3"] if m[3] == "conv" else ["3"]
        if int(m[4]) >= len(units):
            return m[0]
        unit, rest = units[int(m[4])], m[5]
        if unit in ("se", "conv3", "bn3"):
            return f"{prefix}.{unit}.{rest}"
        layer, _, tail = rest.partition(".")
        return f"{prefix}.{'conv' if layer == '0' else 'bn'}{unit}.{tail}"

    def conv_norm_act(m: re.Match) -> str:
        name = ("stem.conv1", "stem.bn1") if m[1] == "0" else ("head.conv", "head.bn")
        return f"{name[int(m[2])]}.{m[3]}"

    def classifier(m: re.Match) -> str:
        hidden = "head.hidden.0.weight" in ours
        return {"0": "head.hidden.0.", "3": "head.fc."}.get(m[1], m[0]) if hidden else "head.fc."

    return [(r"^features\.(\d+)\.(?:(\d+)\.)?(conv|block)\.(\d+)\.(.*)$", in_block),
            (r"^features\.(\d+)\.([01])\.(\w+)$", conv_norm_act),
            (r"^classifier\.(\d+)\.", classifier)]


#: torchvision's MNASNet numbers its inverted residuals' bare modules 0 conv, 1 BN, 2 ReLU, 3 conv, ... (ReLUs
#: hold no keys): archgen's conv1, bn1, conv2, bn2, conv3, bn3.
_MNASNET_UNITS = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}


def _torchvision_mnasnet_rules(ours: set[str]) -> list[Rule]:
    """torchvision's MNASNet is one flat Sequential `layers`: the stem (0 conv, 1 BN), the separable conv that
    is archgen's first block without expansion (3 depthwise, 4 BN, 6 pointwise, 7 BN), six stacks of blocks
    (`layers.{8..13}.{j}.layers.{k}`, archgen's stages 2..7) and the head's 1x1 conv (14, 15)."""
    def in_stack(m: re.Match) -> str:
        return f"layer{int(m[1]) - 6}.{m[2]}.{_MNASNET_UNITS[m[3]]}."

    if "head.conv.weight" not in ours:
        return []
    return [(r"^layers\.0\.", "stem.conv1."), (r"^layers\.1\.", "stem.bn1."),
            (r"^layers\.3\.", "layer1.0.conv2."), (r"^layers\.4\.", "layer1.0.bn2."),
            (r"^layers\.6\.", "layer1.0.conv3."), (r"^layers\.7\.", "layer1.0.bn3."),
            (r"^layers\.(\d+)\.(\d+)\.layers\.([013467])\.", in_stack),
            (r"^layers\.14\.", "head.conv."), (r"^layers\.15\.", "head.bn.")]


def _keys(model: nn.Module) -> set[str]:
    return set(model.state_dict())


#: Layout name -> the model's rules, tried in order; the first that matches a key rewrites it.
LAYOUTS: dict[str, Callable[[nn.Module], list[Rule]]] = {
    "archgen": lambda model: [],
    "torchvision": lambda model: (_vgg_rules(model, pre_logits=False) + _torchvision_mobile_rules(_keys(model))
                                  + _torchvision_mnasnet_rules(_keys(model)) + _DENSENET_RULES
                                  + _TORCHVISION_REGNET_RULES + _RESNET_RULES),
    # Whether timm's `bn1` is the stem's only BN or its third depends on the model's stem.
    "timm": lambda model: (_vgg_rules(model, pre_logits=True) + _DENSENET_RULES
                           + (_TIMM_DEEP_STEM_RULES if _has_module(model, "stem.conv3") else []) + _RESNET_RULES
                           + _TIMM_REGNET_RULES),
}


def key_map(keys: list[str], layout: str, model: nn.Module) -> dict[str, str]:
    """Checkpoint key -> archgen key under `layout` for `model`, for every key (unmatched keys map to themselves)."""
    if layout not in LAYOUTS:
        raise UserError(f"unknown weights layout '{layout}'; choose one of {', '.join(LAYOUTS)} (or 'auto')")
    rules = [(re.compile(pattern), repl) for pattern, repl in LAYOUTS[layout](model)]
    out = {}
    for key in keys:
        for pattern, repl in rules:
            new, n = pattern.subn(repl, key, count=1)
            if n:
                out[key] = new
                break
        else:
            out[key] = key
    return out


# ---- reading checkpoints ----

def read_state_dict(source: WeightsSource) -> dict[str, torch.Tensor]:
    """A state dict from memory or from a `.safetensors` / `.pt` file, checked to be names -> tensors."""
    if isinstance(source, Mapping):
        return _checked_state_dict(source, "the state dict")
    path = Path(source)
    if not path.is_file():
        raise WeightsError(f"no weights file '{path}'" + (" (it is a directory)" if path.is_dir() else ""))
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return _checked_state_dict(_read_safetensors(path), f"'{path}'")
    if suffix in TORCH_SUFFIXES:
        return _checked_state_dict(_read_torch(path), f"'{path}'")
    raise WeightsError(f"cannot tell the format of '{path}' from its suffix; archgen reads {SAFETENSORS_SUFFIX} "
                       f"and PyTorch state dicts ({', '.join(TORCH_SUFFIXES)})")


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, ValueError, RuntimeError, OSError) as exc:
        raise WeightsError(f"'{path}' is not a valid safetensors file (its header does not match its data, or "
                           f"it is truncated): {exc}") from None


def _read_torch(path: Path) -> object:
    import pickle
    import zipfile

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsupported = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        if unsupported is None:  # not a pickle at all, or a broken one
            raise WeightsError(f"cannot read '{path}' as a PyTorch checkpoint (truncated, or not one): "
                               f"{_first_sentence(exc)}") from None
        raise WeightsError(f"'{path}' holds objects other than tensors and plain containers (it names "
                           f"{unsupported[1]}); archgen never unpickles arbitrary objects (torch.load with "
                           "weights_only=True refused it)") from None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(f"cannot read '{path}' as a PyTorch checkpoint (truncated, or not one): "
                           f"{_first_sentence(exc)}") from None


def _first_sentence(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.split(". ")[0].rstrip(".")


def _checked_state_dict(obj: object, what: str) -> dict[str, torch.Tensor]:
    # Training checkpoints often wrap the state dict ({"state_dict": ...} or {"model": ...}).
    if isinstance(obj, Mapping) and len(obj) >= 1 and not all(isinstance(v, torch.Tensor) for v in obj.values()):
        for wrapper in ("state_dict", "model"):
            if isinstance(obj.get(wrapper), Mapping):
                return _checked_state_dict(obj[wrapper], f"{what}['{wrapper}']")
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{what} is not a state dict: it holds a {type(obj).__name__}, not a mapping of "
                           "parameter names to tensors")
    bad = [k for k, v in obj.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        shown = ", ".join(repr(k) for k in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise WeightsError(f"{what} is not a state dict: the entries {shown} are not tensors named by strings")
    if not obj:
        raise WeightsError(f"{what} is empty")
    return dict(obj)


# ---- matching and loading ----

def _group(keys: list[str]) -> str:
    """`layer4.2.conv1.weight, layer4.2.bn1.weight, ...` -> `layer4.2 (12)`: keys by their block (or module)."""
    groups: OrderedDict[str, int] = OrderedDict()
    for key in keys:
        parts = key.split(".")
        prefix = ".".join(parts[:2]) if len(parts) > 2 else parts[0]
        groups[prefix] = groups.get(prefix, 0) + 1
    shown = [f"{p}.* ({n})" if n > 1 else next(k for k in keys if k.startswith(p + ".") or k == p)
             for p, n in list(groups.items())[:MAX_GROUPS_SHOWN]]
    rest = len(groups) - MAX_GROUPS_SHOWN
    return ", ".join(shown) + (f" and {rest} more groups" if rest > 0 else "")


def _shape(t: torch.Tensor) -> str:
    return "x".join(map(str, t.shape)) or "scalar"


def _problems(mapped: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], ignore: tuple[str, ...]
              ) -> tuple[list[str], list[str], list[str]]:
    missing = [k for k in ours if k not in mapped and not k.startswith(ignore)]
    unexpected = [k for k in mapped if k not in ours]
    mis_shaped = [k for k, v in mapped.items() if k in ours and (
        v.shape != ours[k].shape or v.is_floating_point() != ours[k].is_floating_point())]
    return missing, unexpected, mis_shaped


def match_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], layout: str = "archgen", *,
                     ignore_classifier: bool = False) -> dict[str, torch.Tensor]:
    """The checkpoint under archgen's names, checked to fit `model` exactly; raises WeightsMismatch.

    `layout="auto"` takes the first of archgen, torchvision, timm under which everything fits.
    `ignore_classifier` drops the checkpoint's classifier and leaves the model's (fine-tuning to
    other classes, as timm does when num_classes differs from the checkpoint's).
    """
    ours = model.state_dict()
    ignore = ("head.fc.",) if ignore_classifier else ()
    attempts = []
    for name in list(LAYOUTS) if layout == "auto" else [layout]:
        names, mapped, problems = _attempt(model, state_dict, name, ours, ignore)
        if not any(problems):
            return mapped
        attempts.append((sum(map(len, problems)), name, names, mapped, problems))
    _, name, names, mapped, (missing, unexpected, mis_shaped) = min(attempts, key=lambda a: a[0])
    fits = "" if layout == "auto" else next(
        (other for other in LAYOUTS if other != layout and _fits(model, state_dict, other, ours, ignore)), "")
    raise WeightsMismatch(_mismatch_message(model, name, layout, names, mapped, ours, missing, unexpected,
                                            mis_shaped, fits), missing=missing, unexpected=unexpected,
                          mis_shaped=mis_shaped)


def _fits(model: nn.Module, state_dict: Mapping[str, torch.Tensor], layout: str, ours: dict[str, torch.Tensor],
          ignore: tuple[str, ...]) -> bool:
    try:
        return not any(_attempt(model, state_dict, layout, ours, ignore)[2])
    except WeightsMismatch:  # keys that collide under this layout: it is not the checkpoint's either
        return False


def _attempt(model: nn.Module, state_dict: Mapping[str, torch.Tensor], layout: str, ours: dict[str, torch.Tensor],
             ignore: tuple[str, ...]) -> tuple[dict[str, str], dict[str, torch.Tensor], tuple[list, list, list]]:
    """The checkpoint renamed (and timm's conv-as-linear weights flattened) under one layout, and what
    does not fit: (checkpoint key -> archgen key, archgen key -> tensor, (missing, unexpected, mis-shaped))."""
    names = key_map(list(state_dict), layout, model)
    as_linear = _CONV_AS_LINEAR.get(layout)
    mapped: dict[str, torch.Tensor] = {}
    for theirs, new in names.items():
        if new in mapped:
            raise WeightsMismatch(f"under the '{layout}' layout two checkpoint keys map to '{new}'; the "
                                  "checkpoint mixes layouts", missing=[], unexpected=[theirs], mis_shaped=[])
        tensor = state_dict[theirs]
        if as_linear is not None and as_linear.match(theirs) and tensor.dim() == 4:
            tensor = tensor.reshape(tensor.shape[0], -1)
        mapped[new] = tensor
    if ignore:
        mapped = {k: v for k, v in mapped.items() if not k.startswith(ignore)}
    return names, mapped, _problems(mapped, ours, ignore)


def _mismatch_message(model: nn.Module, name: str, asked: str, names: dict[str, str], mapped: dict,
                      ours: dict, missing: list[str], unexpected: list[str], mis_shaped: list[str], fits: str) -> str:
    back = {new: old for old, new in names.items()}
    model_name = getattr(model, "name", type(model).__name__)
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (the model has them, the checkpoint does not): {_group(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (in the checkpoint, not in the model): "
                     f"{_group([back.get(k, k) for k in unexpected])}")
    if mis_shaped:
        shown = "; ".join(f"{k} (checkpoint {_shape(mapped[k])} {mapped[k].dtype}, model {_shape(ours[k])} "
                          f"{ours[k].dtype})" for k in mis_shaped[:MAX_GROUPS_SHOWN])
        more = f" and {len(mis_shaped) - MAX_GROUPS_SHOWN} more" if len(mis_shaped) > MAX_GROUPS_SHOWN else ""
        parts.append(f"{len(mis_shaped)} mis-shaped: {shown}{more}")
    how = f"the '{name}' layout" + (" (the closest of all layouts)" if asked == "auto" else "")
    hint = ""
    if fits:
        hint = f" Its keys fit the '{fits}' layout: pass layout='{fits}' (or 'auto', which tries every layout)."
    elif len(missing) + len(unexpected) > len(ours) // 2:
        hint = " It looks like a checkpoint of another architecture, or of another layout (layout='auto' tries all)."
    return (f"the checkpoint does not fit {model_name} under {how}: " + "; ".join(parts)
            + f". Nothing was loaded; the model is unchanged.{hint}")


def load_weights(model: nn.Module, source: WeightsSource, layout: str = "archgen", *,
                 ignore_classifier: bool = False) -> nn.Module:
    """Load a checkpoint into `model` by name, all or nothing.

    `source` is a path (`.safetensors`, `.pt`, `.pth`) or a state dict; `layout` says whose names
    it uses: "archgen", "torchvision", "timm", or "auto" (the first that fits). Every key must map
    to a model entry of the same shape and every model entry must be filled, else WeightsMismatch
    names what differs and the model is left untouched.
    """
    mapped = match_state_dict(model, read_state_dict(source), layout, ignore_classifier=ignore_classifier)
    model.load_state_dict(mapped, strict=not ignore_classifier)
    return model


# ---- saving ----

def weights_format(path: str | os.PathLike) -> str:
    """'safetensors' or 'pt' from a file name; UserError for any other suffix (checked before any work)."""
    suffix = Path(path).suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        return "safetensors"
    if suffix in (".pt", ".pth"):
        return "pt"
    raise UserError(f"cannot tell how to save '{path}': name it *.safetensors (for sharing; records the spec and "
                    "archgen's version) or *.pt / *.pth (a plain PyTorch state dict)")


def save_weights(model: nn.Module, path: str | os.PathLike, *, spec_name: str | None = None) -> None:
    """Write the model's state dict whole or not at all: `.safetensors` with metadata (spec name,
    archgen version, layout) or `.pt` as a plain state dict that `torch.load(weights_only=True)` reads."""
    from archgen import __version__
    from archgen.render import write_atomic

    fmt = weights_format(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if fmt == "safetensors":
        from safetensors.torch import save

        metadata = {"format": "pt", "layout": "archgen", "archgen_version": __version__,
                    "spec": spec_name or str(getattr(model, "name", ""))}
        data = save(state, metadata=metadata)
    else:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        data = buffer.getvalue()
    write_atomic(os.fspath(path), data)


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """A `.safetensors` file's metadata (spec name, archgen version), without reading its tensors."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(os.fspath(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"'{path}' is not a valid safetensors file: {exc}") from None

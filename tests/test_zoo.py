"""The ResNet family zoo: every bundled spec's printed paper numbers hold within the paper's own rounding
(or, where the spec lists them as `unmet`, are shown to be off), and the architectures behave as the
papers describe them."""

from __future__ import annotations

import math

import pytest
import torch

import archgen
from archgen.weights import key_map, load_weights, match_state_dict
from archgen.printed import within
from archgen.grammar.loader import bundled_names
from conftest import assert_reference_logits, filled_state_dict, torchvision_reference

#: The specs the ResNet-family issue asks for, by family.
ZOO = {
    "2015 layout": ["resnet50_v1", "resnet101_v1", "resnet152_v1"],
    "CIFAR option A": ["resnet20_cifar", "resnet32_cifar", "resnet44_cifar", "resnet56_cifar", "resnet110_cifar",
                       "resnet1202_cifar"],
    "plain": ["plain18", "plain34", "plain20_cifar", "plain56_cifar"],
    "pre-activation": ["preact_resnet110_cifar", "preact_resnet164_cifar", "preact_resnet1001_cifar",
                       "preact_resnet200"],
    "wide": ["wrn_40_4_cifar", "wrn_16_8_cifar", "wrn_28_10_cifar", "wide_resnet101_2"],
    "resnext": ["resnext101_32x4d", "resnext101_64x4d", "resnext29_8x64d_cifar", "resnext29_16x64d_cifar",
                "resnext50_2x40d", "resnext50_4x24d", "resnext50_8x14d"],
    "densenet": ["densenet161", "densenet264", "densenet40_k12_cifar", "densenet_bc100_k12_cifar",
                 "densenet_bc250_k24_cifar", "densenet_bc190_k40_cifar"],
    "stochastic depth": ["resnet110_sd_cifar", "resnet1202_sd_cifar"],
    "darknet": ["darknet53"],
    "bag of tricks": ["resnet50_b", "resnet50_c", "resnet50_d"],
    "dilated": ["drn_a_50", "drn_c_26", "drn_d_54"],
}
ZOO_NAMES = [name for names in ZOO.values() for name in names]
FIGURES = ("params", "macs", "flops")


def printed_figures(name: str):
    """(citation label, figure, printed text, unmet?) for every number the spec's `paper:` section cites."""
    paper = archgen.load_spec(name).doc.paper
    if paper is None:
        return
    for citation in [paper, *(paper.also or [])]:
        unmet = set(citation.unmet or [])
        for figure in FIGURES:
            printed = getattr(citation, figure)
            if printed is not None:
                yield citation, figure, printed, figure in unmet


def computed(name: str, citation, figure: str) -> int:
    p = archgen.profile(name, input_size=citation.input_size)
    return {"params": p.params, "macs": p.macs, "flops": p.flops}[figure]


CASES = [(name, f"{c.table}: {figure} {printed}", c, figure, printed, unmet)
         for name in bundled_names() for c, figure, printed, unmet in printed_figures(name)]


@pytest.mark.parametrize("name, label, citation, figure, printed, unmet", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_printed_paper_number_holds_within_its_rounding(name, label, citation, figure, printed, unmet):
    value = computed(name, citation, figure)
    if unmet:
        assert not within(printed, value), f"{name}: {label} now holds ({value:,}); drop it from `unmet`"
        assert citation.note or archgen.load_spec(name).doc.paper.note, "an unmet number needs a note saying why"
    else:
        assert within(printed, value), f"{name}: {label} but the spec counts {value:,}"


@pytest.mark.parametrize("name", bundled_names())
def test_unmet_names_only_printed_figures(name):
    paper = archgen.load_spec(name).doc.paper
    for citation in [paper, *(paper.also or [])] if paper else []:
        for figure in citation.unmet or []:
            assert getattr(citation, figure) is not None, f"{name}: `unmet` names {figure}, which is not printed"


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_spec_cites_its_paper_and_builds(name):
    spec = archgen.load_spec(name)
    paper = spec.doc.paper
    assert paper.title and paper.authors and paper.year and paper.arxiv and paper.table
    model = archgen.build(name, device="meta")
    assert sum(p.numel() for p in model.parameters()) == archgen.profile(name).params


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_spec_pins_a_number_or_says_why_not(name):
    doc = archgen.load_spec(name).doc
    note = doc.paper.note or ""
    cited = list(printed_figures(name))
    assert cited or doc.torchvision or "no parameter count" in note or "could not be checked" in note, \
        f"{name} cites no printed number and does not say why"


# ---- He et al. 2015 ----

def test_he_2015_cifar_params_table_6():
    """Table 6: 0.27M, 0.46M, 0.66M, 0.85M, 1.7M, 19.4M; exact option-A counts for a 10-way classifier."""
    counts = {n: archgen.profile(f"resnet{n}_cifar").params for n in (20, 32, 44, 56, 110, 1202)}
    assert counts[20] == 269_722 and counts[32] == 464_154 and counts[44] == 658_586
    assert [within(t, counts[n]) for n, t in zip(counts, ["0.27M", "0.46M", "0.66M", "0.85M", "1.7M", "19.4M"])] \
        == [True] * 6


@pytest.mark.parametrize("plain, residual", [("plain20_cifar", "resnet20_cifar"), ("plain56_cifar", "resnet56_cifar"),
                                             ("plain18", "resnet18"), ("plain34", "resnet34")])
def test_plain_nets_are_their_residual_twins_minus_shortcuts(plain, residual):
    """CIFAR (option A): the same parameters; ImageNet: the twin minus its projection shortcuts."""
    p, r = archgen.profile(plain), archgen.profile(residual)
    shortcut_params = sum(layer.params for layer in r.layers if ".downsample." in layer.name)
    assert p.params == r.params - shortcut_params
    assert [x.out for x in p.stages] == [x.out for x in r.stages]
    assert not any(layer.op == "add" for layer in p.layers)


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    model = archgen.build("resnet20_cifar").eval()
    block = model.layer2[0]
    x = torch.randn(2, 16, 32, 32)
    out = block.downsample(x)
    assert out.shape == (2, 32, 16, 16)
    torch.testing.assert_close(out[:, :16], x[:, :, ::2, ::2])
    assert torch.count_nonzero(out[:, 16:]) == 0
    assert sum(p.numel() for p in block.downsample.parameters()) == 0


def test_v1_strides_the_first_1x1_and_v1_5_the_3x3():
    v1 = archgen.build("resnet50_v1", device="meta").layer2[0]
    v15 = archgen.build("resnet50", device="meta").layer2[0]
    assert (v1.conv1.stride, v1.conv2.stride) == ((2, 2), (1, 1))
    assert (v15.conv1.stride, v15.conv2.stride) == ((1, 1), (2, 2))


# ---- pre-activation ----

def test_preact_resnet1001_printed_10_2M_counts_conv_and_fc_weights_only():
    """Identity Mappings Table 4's 10.2M is the count without BN's scales and shifts (10.33M with them)."""
    p = archgen.profile("preact_resnet1001_cifar")
    without_bn = sum(layer.params for layer in p.layers if layer.op != "bn")
    assert p.params == 10_327_706 and within("10.2M", without_bn) and not within("10.2M", p.params)


def test_preact_units_activate_before_the_split_only_where_the_paper_says():
    model = archgen.build("preact_resnet164_cifar", device="meta")
    first, inner, down = model.layer1[0], model.layer1[1], model.layer2[0]
    assert (first.mode, inner.mode, down.mode) == ("both", "branch", "both")
    assert isinstance(down.downsample[0], torch.nn.Conv2d) and len(down.downsample) == 1  # no BN
    assert model.head.norm.num_features == 256
    resnet200 = archgen.build("preact_resnet200", device="meta")
    assert resnet200.layer1[0].mode == "none" and not hasattr(resnet200.layer1[0], "bn1")


def test_preact_unit_computes_x_plus_branch_of_bn_relu_x():
    torch.manual_seed(0)
    model = archgen.build("preact_resnet110_cifar").eval()
    unit = model.layer1[3]
    x = torch.randn(2, 16, 8, 8)
    pre = torch.relu(unit.bn1(x))
    expected = x + unit.conv2(torch.relu(unit.bn2(unit.conv1(pre))))
    torch.testing.assert_close(unit(x), expected)


def test_wide_resnet_keeps_dropout_between_the_convs():
    model = archgen.build("wrn_28_10_cifar", device="meta")
    unit = model.layer2[1]
    assert isinstance(unit.drop, torch.nn.Dropout) and unit.drop.p == 0.3
    names = [n for n, _ in unit.named_children()]
    assert names.index("conv1") < names.index("drop") < names.index("conv2")
    assert unit.conv1.out_channels == 320


# ---- DarkNet-53 ----

def test_darknet53_layers_of_yolov3_table_1():
    p = archgen.profile("darknet53")
    convs = [layer for layer in p.layers if layer.op == "conv"]
    assert len(convs) == 52  # 53 layers with the connected one
    assert [s.notation for s in p.stages[1:-1]] == [
        f"[3x3, {c}, stride 2] x 1 [1x1, {c // 2}; 3x3, {c}] x {n}"
        for c, n in [(64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)]]
    assert p.stages[-2].out == (1024, 8, 8)
    model = archgen.build("darknet53", device="meta")
    assert model.layer1[1].act1.negative_slope == 0.1


def test_darknet53_bn_ops_are_twice_the_macs():
    """Table 2's 18.7 Bn Ops: this layout counts 18.57 G (2 x MACs), 0.7% under; see the spec's note."""
    p = archgen.profile("darknet53", input_size=256)
    assert p.flops == 18_570_231_808  # conv + fc multiply-adds, times two, at 256x256
    assert abs(p.flops / 18.7e9 - 1) < 0.01


# ---- Bag of Tricks ----

def test_resnet50_b_is_torchvisions_resnet50():
    ref = torchvision_reference("resnet50")
    assert archgen.profile("resnet50_b").params == ref["params"]
    assert_reference_logits("resnet50_b", ref, "torchvision")


def test_resnet50_c_and_d_tweaks():
    c, d = archgen.build("resnet50_c", device="meta"), archgen.build("resnet50_d", device="meta")
    assert [m.out_channels for m in c.stem.children() if isinstance(m, torch.nn.Conv2d)] == [32, 32, 64]
    assert c.stem.conv1.stride == (2, 2) and c.stem.conv2.stride == (1, 1)
    pool, conv = d.layer2[0].downsample[0], d.layer2[0].downsample[1]
    assert isinstance(pool, torch.nn.AvgPool2d) and pool.kernel_size == 2 and conv.stride == (1, 1)
    assert archgen.profile("resnet50_c").params == archgen.profile("resnet50_d").params


# ---- dilated ----

@pytest.mark.parametrize("name", ["drn_a_50", "drn_c_26", "drn_d_54"])
def test_drn_has_output_stride_8(name):
    model = archgen.build(name, device="meta")
    assert model.feature_info[-1]["reduction"] == 8
    outs = model.forward_stages(torch.empty(1, 3, 64, 64, device="meta"))
    assert outs[-1].shape[-1] == 8


def test_drn_dilations_follow_the_authors_code():
    a = archgen.build("drn_a_50", device="meta")
    assert a.layer3[0].conv2.dilation == (1, 1) and a.layer3[1].conv2.dilation == (2, 2)
    assert a.layer4[0].conv2.dilation == (1, 1) and a.layer4[1].conv2.dilation == (4, 4)
    c = archgen.build("drn_c_26", device="meta")
    assert c.layer5[0].conv1.dilation == (2, 2) and c.layer6[0].conv1.dilation == (4, 4)
    assert c.stem.conv1.kernel_size == (7, 7) and c.stem.conv1.stride == (1, 1)
    assert [m.conv.dilation for m in c.layer7] == [(2, 2), (2, 2)] and c.layer7[0].downsample is None


# ---- the three torchvision twins derived from the papers, no reference file ----

def torchvision_resnet_keys(layers: list[int], groups: int, width_per_group: int, classes: int = 1000):
    """torchvision.models.resnet.ResNet's state dict, by its naming rules: `conv1`, `bn1`, then
    `layer{i}.{j}.` conv1/bn1/conv2/bn2/conv3/bn3 (Bottleneck registration order) and `downsample.0` (1x1 conv)
    / `downsample.1` (BN) on the first block of a stage, then `fc`. Inner width int(planes * width_per_group /
    64) * groups; BN entries weight, bias, running_mean, running_var, num_batches_tracked."""
    keys: list[tuple[str, list[int]]] = []

    def conv(name, cout, cin, k):
        keys.append((f"{name}.weight", [cout, cin, k, k]))

    def bn(name, c):
        keys.extend([(f"{name}.weight", [c]), (f"{name}.bias", [c]), (f"{name}.running_mean", [c]),
                     (f"{name}.running_var", [c]), (f"{name}.num_batches_tracked", [])])

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    inplanes = 64
    for i, (planes, depth) in enumerate(zip([64, 128, 256, 512], layers)):
        width = int(planes * width_per_group / 64) * groups
        for j in range(depth):
            p = f"layer{i + 1}.{j}"
            conv(f"{p}.conv1", width, inplanes, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width // groups, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", planes * 4, width, 1)
            bn(f"{p}.bn3", planes * 4)
            if j == 0:
                conv(f"{p}.downsample.0", planes * 4, inplanes, 1)
                bn(f"{p}.downsample.1", planes * 4)
            inplanes = planes * 4
    keys += [("fc.weight", [classes, 2048]), ("fc.bias", [classes])]
    return keys


def torchvision_densenet_keys(growth: int, blocks: list[int], init: int, bn_size: int = 4, classes: int = 1000):
    """torchvision.models.densenet.DenseNet's state dict: `features.conv0`, `features.norm0`, then
    `features.denseblock{b}.denselayer{l}.` norm1/conv1/norm2/conv2 (1-based), `features.transition{b}.`
    norm/conv after every block but the last, `features.norm5`, `classifier`."""
    keys: list[tuple[str, list[int]]] = []

    def bn(name, c):
        keys.extend([(f"{name}.weight", [c]), (f"{name}.bias", [c]), (f"{name}.running_mean", [c]),
                     (f"{name}.running_var", [c]), (f"{name}.num_batches_tracked", [])])

    keys.append(("features.conv0.weight", [init, 3, 7, 7]))
    bn("features.norm0", init)
    c = init
    for b, n in enumerate(blocks, 1):
        for layer in range(1, n + 1):
            p = f"features.denseblock{b}.denselayer{layer}"
            bn(f"{p}.norm1", c)
            keys.append((f"{p}.conv1.weight", [bn_size * growth, c, 1, 1]))
            bn(f"{p}.norm2", bn_size * growth)
            keys.append((f"{p}.conv2.weight", [growth, bn_size * growth, 3, 3]))
            c += growth
        if b < len(blocks):
            bn(f"features.transition{b}.norm", c)
            keys.append((f"features.transition{b}.conv.weight", [c // 2, c, 1, 1]))
            c //= 2
    bn("features.norm5", c)
    keys += [("classifier.weight", [classes, c]), ("classifier.bias", [classes])]
    return keys


TWINS = {
    # name: (torchvision's num_params from its weight metadata, its state-dict keys by its naming rules)
    "resnext101_64x4d": (83_455_272, lambda: torchvision_resnet_keys([3, 4, 23, 3], 64, 4)),
    "wide_resnet101_2": (126_886_696, lambda: torchvision_resnet_keys([3, 4, 23, 3], 1, 128)),
    "densenet161": (28_681_000, lambda: torchvision_densenet_keys(48, [6, 12, 36, 24], 96)),
}


def our_name(torchvision_key: str) -> str:
    """Where archgen keeps a torchvision key: ResNets keep torchvision's names (the stem under `stem.`);
    DenseNet's denseblock{b}.denselayer{n} is layer{b}.{n - 1}, or layer{b}.{n} after the transition that opens
    stage b > 1 (transition{b} is layer{b + 1}.0)."""
    import re

    rules = [(r"^(conv1|bn1)\.", r"stem.\1."), (r"^features\.conv0\.", "stem.conv1."),
             (r"^features\.norm0\.", "stem.bn1."), (r"^features\.norm5\.", "head.norm."),
             (r"^classifier\.", "head.fc."), (r"^fc\.", "head.fc.")]
    for pattern, replacement in rules:
        if re.match(pattern, torchvision_key):
            return re.sub(pattern, replacement, torchvision_key)
    dense = re.match(r"^features\.denseblock(\d+)\.denselayer(\d+)\.(.*)$", torchvision_key)
    if dense:
        b, n, rest = int(dense[1]), int(dense[2]), dense[3]
        return f"layer{b}.{n - 1 if b == 1 else n}.{rest}"
    transition = re.match(r"^features\.transition(\d+)\.(.*)$", torchvision_key)
    if transition:
        return f"layer{int(transition[1]) + 1}.0.{transition[2]}"
    return torchvision_key


@pytest.mark.parametrize("name", TWINS)
def test_torchvision_twin_has_torchvisions_param_count(name):
    params, _ = TWINS[name]
    assert archgen.profile(name).params == params
    assert sum(p.numel() for p in archgen.build(name, device="meta").parameters()) == params


@pytest.mark.parametrize("name", TWINS)
def test_torchvision_twin_pairs_strictly_with_torchvisions_keys(name):
    params, keys = TWINS[name]
    entries = keys()
    assert sum(math.prod(shape) for key, shape in entries if not key.endswith(("running_mean", "running_var",
                                                                                 "num_batches_tracked"))) == params
    model = archgen.build(name, device="meta")
    state = {k: torch.empty(s, device="meta", dtype=torch.long if k.endswith("num_batches_tracked") else None)
             for k, s in entries}
    match_state_dict(model, state, "torchvision")  # every key used once, every shape equal
    mapping = key_map(list(state), "torchvision", model)
    assert all(ours == our_name(theirs) for theirs, ours in mapping.items())


def test_densenet161_loads_torchvision_names_and_runs():
    _, keys = TWINS["densenet161"]
    model = archgen.build("densenet161").eval()
    state = filled_state_dict(keys())
    load_weights(model, state, layout="torchvision")
    torch.testing.assert_close(model.layer3[0].conv.weight, state["features.transition2.conv.weight"])
    torch.testing.assert_close(model.layer4[5].conv2.weight, state["features.denseblock4.denselayer5.conv2.weight"])
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 1000)

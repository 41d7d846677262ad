"""timm's conventions, exactly (tests/data/timm/feature_info.json: what timm 1.0.31 reports for ten models):
`features_only` maps counted from the stem's (ResNet-50: 64 channels at stride 2, then layer1..layer4),
`feature_info.channels()` / `.reduction()` / `.module_name()`, indexing and `len`, `pretrained_cfg`, and
`pretrained=False` / `pretrained=True` as a timm user writes them."""

from __future__ import annotations

import json

import pytest
import torch

import archgen
from archgen.errors import UserError
from archgen.network import FeatureInfo, FeatureListNet
from archgen.weights import key_map
from conftest import DATA

TIMM = json.loads((DATA / "timm" / "feature_info.json").read_text())["models"]

#: The archgen module whose output each of timm's maps is (timm's name -> ours, in order): the stem before its
#: max-pool (timm's act1, norm0), the stages, VGG's layers before each pool and its last pool, DenseNet's
#: final norm (timm's norm5: archgen's head.norm and head.act).
ARCHGEN_MODULES = {
    "resnet50": ["stem.act1", "layer1", "layer2", "layer3", "layer4"],
    "resnext50_32x4d": ["stem.act1", "layer1", "layer2", "layer3", "layer4"],
    "seresnet50": ["stem.act1", "layer1", "layer2", "layer3", "layer4"],
    "resnet26d": ["stem.act3", "layer1", "layer2", "layer3", "layer4"],
    "regnetx_002": ["stem", "layer1", "layer2", "layer3", "layer4"],
    "regnety_008": ["stem", "layer1", "layer2", "layer3", "layer4"],
    "densenet121": ["stem.act1", "layer1", "layer2", "layer3", "head.act"],
    "vgg11": ["layer1.0", "layer2.0", "layer3.1", "layer4.1", "layer5.1", "layer5"],
    "vgg16": ["layer1.1", "layer2.1", "layer3.2", "layer4.2", "layer5.2", "layer5"],
    "darknet53": ["stem", "layer1", "layer2", "layer3", "layer4", "layer5"],
}


def test_every_model_in_timms_file_is_bundled():
    assert set(TIMM) == set(ARCHGEN_MODULES) and set(TIMM) <= set(archgen.list_models())


@pytest.mark.parametrize("name", sorted(TIMM))
def test_features_only_gives_timms_channels_and_reductions(name):
    timm = TIMM[name]
    backbone = FeatureListNet(archgen.build(name, device="meta"))  # what create_model(features_only=True) returns
    info = backbone.feature_info
    assert list(info.out_indices) == timm["default_out_indices"]
    assert info.channels() == timm["channels"] and info.reduction() == timm["reduction"]
    assert info.module_name() == ARCHGEN_MODULES[name] and len(info) == len(timm["module"])
    size = archgen.load_spec(name).doc.input.size
    with torch.no_grad():
        maps = backbone.eval()(torch.empty(1, 3, size, size, device="meta"))
    assert [m.shape[1] for m in maps] == timm["channels"]
    assert [size // m.shape[-1] for m in maps] == timm["reduction"]


@pytest.mark.parametrize("name", sorted(TIMM))
def test_pretrained_cfg_holds_timms_data_config_under_archgens_module_names(name):
    timm = TIMM[name]["pretrained_cfg"]
    model = archgen.build(name, device="meta")
    cfg = model.pretrained_cfg
    assert model.default_cfg is cfg and cfg["architecture"] == name
    for key in ("input_size", "mean", "std", "pool_size"):
        assert list(cfg[key]) == timm[key], key
    assert cfg["num_classes"] == timm["num_classes"] == model.num_classes
    first_conv = model.get_submodule(cfg["first_conv"])
    assert isinstance(first_conv, torch.nn.Conv2d) and first_conv.in_channels == 3
    assert model.get_submodule(cfg["classifier"]) is model.get_classifier()
    assert cfg["first_conv"] == ("stem.conv1" if not name.startswith("vgg") else "layer1.0.conv")
    if name != "darknet53":  # timm's names, read through archgen's timm weights layout (none for DarkNet), are ours
        names = key_map([f"{timm['first_conv']}.weight", f"{timm['classifier']}.weight"], "timm", model)
        assert list(names.values()) == [f"{cfg['first_conv']}.weight", f"{cfg['classifier']}.weight"]


@pytest.mark.parametrize("name", ["resnet50", "resnet26d", "seresnet50", "regnetx_002", "densenet121"])
def test_timm_style_backbone_code_runs_unchanged(name):
    model = archgen.create_model(name, pretrained=False, features_only=True, out_indices=(1, 2, 3, 4))
    assert model.feature_info.channels() == TIMM[name]["channels"][1:]
    assert model.feature_info.reduction() == TIMM[name]["reduction"][1:]
    with torch.no_grad():
        maps = model.eval()(torch.randn(1, 3, 64, 64))
    assert [(m.shape[1], 64 // m.shape[-1]) for m in maps] == list(zip(TIMM[name]["channels"][1:],
                                                                      TIMM[name]["reduction"][1:]))


def test_pretrained_cfg_describes_the_model_as_built():
    model = archgen.create_model("resnet20_cifar", num_classes=7, in_chans=1)
    assert model.pretrained_cfg["input_size"] == (1, 32, 32) and model.pretrained_cfg["num_classes"] == 7
    assert model.pretrained_cfg["mean"] == (0.449,) and model.pretrained_cfg["std"] == (0.226,)  # ImageNet's, averaged
    backbone = FeatureListNet(archgen.build("resnet50", device="meta"))
    assert "num_classes" not in backbone.pretrained_cfg and "classifier" not in backbone.pretrained_cfg
    assert backbone.default_cfg["mean"] == (0.485, 0.456, 0.406)


def test_out_indices_count_from_the_stem_as_timms_do():
    """ResNet-50's (1, 2, 3) are layer1..layer3 (before: layer2..layer4), and (1, 2, 3, 4) is no longer an error."""
    backbone = archgen.create_model("resnet50", pretrained=False, features_only=True, out_indices=(1, 2, 3))
    assert backbone.feature_info.channels() == [256, 512, 1024]
    assert backbone.feature_info.reduction() == [4, 8, 16]
    assert backbone.feature_info.module_name() == ["layer1", "layer2", "layer3"]
    with torch.no_grad():
        maps = backbone.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(256, 16, 16), (512, 8, 8), (1024, 4, 4)]
    model = archgen.build("resnet50", device="meta")
    four = FeatureListNet(model, (1, 2, 3, 4)).feature_info  # README's example
    assert four.channels() == [256, 512, 1024, 2048] and four.reduction() == [4, 8, 16, 32]
    assert FeatureListNet(model, 2).feature_info.out_indices == (3, 4)


def test_feature_info_indexes_every_map_and_lists_the_chosen_ones():
    """As timm's FeatureInfo: [i] and len see all the network's maps, the accessors the chosen ones (or idx)."""
    model = archgen.build("resnet50", device="meta")
    info = FeatureListNet(model, (1, 3)).feature_info
    assert isinstance(info, FeatureInfo) and len(info) == 5
    assert info[0] == {"num_chs": 64, "reduction": 2, "module": "stem.act1", "index": 0}
    assert info.channels() == [256, 1024] and info.channels(4) == 2048 and info.reduction([0, 2]) == [2, 8]
    assert info.get_dicts(keys=["num_chs"]) == [{"num_chs": 256}, {"num_chs": 1024}]
    assert [i["module"] for i in info] == ARCHGEN_MODULES["resnet50"]
    assert model.feature_info.channels() == TIMM["resnet50"]["channels"] and model.feature_info[-1]["reduction"] == 32


def test_pretrained_false_builds_and_pretrained_true_names_the_ways_to_load_weights():
    assert isinstance(archgen.create_model("resnet20_cifar", pretrained=False), torch.nn.Module)
    with pytest.raises(UserError) as info:
        archgen.create_model("resnet20_cifar", pretrained=True)
    message = str(info.value)
    assert "archgen downloads none" in message and "archgen.load_weights(model, FILE" in message
    assert "--weights FILE" in message

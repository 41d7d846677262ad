"""timm's model API on every archgen model: create_model with overrides written into the spec (so the
counts stay right), a registry that users extend, forward_features/forward_head, reset_classifier,
feature_info, features_only backbones and gradient checkpointing."""

from __future__ import annotations

import pytest
import torch

import archgen
from archgen.errors import SpecError, UserError
from archgen.grammar.loader import bundled_names
from archgen.models import SPEC_PATH_ENV, resolve_spec
from archgen.network import FeatureListNet


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.fixture(scope="module")
def resnet20():
    return archgen.create_model("resnet20_cifar").eval()


def test_list_models_is_the_bundled_zoo_filtered_by_a_shell_pattern():
    assert archgen.list_models() == bundled_names()
    assert archgen.list_models("resnet26*") == ["resnet26", "resnet26d"]
    assert "densenet121" not in archgen.list_models("resnet*")


def test_user_spec_directories_join_the_registry(tmp_path, monkeypatch):
    (tmp_path / "tiny_net.yaml").write_text("name: tiny_net\nextends: resnet20_cifar\nstages: "
                                            "[{depth: 1}, {depth: 1}, {depth: 1}]\n")
    monkeypatch.setenv(SPEC_PATH_ENV, str(tmp_path))
    assert archgen.list_models("tiny*") == ["tiny_net"]
    model = archgen.create_model("tiny_net", num_classes=7)
    assert n_params(model) == archgen.profile(resolve_spec("tiny_net", num_classes=7)).params
    assert len(model.layer1) == 1 and model.num_classes == 7


def test_a_user_spec_may_not_shadow_a_bundled_one(tmp_path, monkeypatch):
    (tmp_path / "resnet18.yaml").write_text("name: resnet18\nextends: resnet34\n")
    monkeypatch.setenv(SPEC_PATH_ENV, str(tmp_path))
    with pytest.raises(UserError, match="two specs are named 'resnet18'"):
        archgen.list_models()
    monkeypatch.setenv(SPEC_PATH_ENV, str(tmp_path / "absent"))
    with pytest.raises(UserError, match="not a directory"):
        archgen.list_models()


@pytest.mark.parametrize("overrides", [
    {"num_classes": 10},
    {"in_chans": 1},
    {"multipliers": {"width": 1.5}},
    {"num_classes": 0},
    {"drop_path_rate": 0.2, "head": {"dropout": 0.1}},
])
def test_overrides_go_through_the_spec_so_counts_match_the_model(overrides):
    model = archgen.create_model("resnet20_cifar", **overrides)
    assert n_params(model) == archgen.profile(resolve_spec("resnet20_cifar", **overrides)).params
    in_chans = overrides.get("in_chans", 3)
    out = model.eval()(torch.randn(2, in_chans, 32, 32))
    assert out.shape == (2, overrides.get("num_classes", 10) or model.num_features)


def test_drop_path_rate_is_timms_linear_inverted_per_sample_stochastic_depth():
    spec = resolve_spec("resnet20_cifar", drop_path_rate=0.2)
    sd = spec.doc.stochastic_depth
    assert (sd.final_survival, sd.rule, sd.inverted, sd.per_sample) == (0.8, "linear_span", True, True)
    # timm's ResNet: block i of the network's L drops with drop_path_rate * i / (L - 1).
    drops = [1 - b.at.survival for stage in archgen.plan(spec).stages for b in stage.blocks]
    assert len(drops) == 9
    assert drops == pytest.approx([0.2 * i / 8 for i in range(9)], abs=1e-12)
    assert resolve_spec("resnet110_sd_cifar", drop_path_rate=0.0).doc.stochastic_depth is None
    with pytest.raises(UserError, match="drop_path_rate"):
        archgen.create_model("resnet20_cifar", drop_path_rate=1.0)


def test_an_override_the_grammar_refuses_is_a_spec_error():
    with pytest.raises(SpecError, match="overrides"):
        archgen.create_model("resnet20_cifar", multipliers={"width": -1})


def test_create_model_takes_a_spec_a_mapping_with_extends_and_a_path():
    spec = archgen.load_spec("resnet20_cifar")
    assert n_params(archgen.create_model(spec, num_classes=5)) == archgen.profile(
        resolve_spec("resnet20_cifar", num_classes=5)).params
    from_mapping = archgen.create_model({"extends": "resnet20_cifar", "name": "r20_wide",
                                         "multipliers": {"width": 2}})
    assert n_params(from_mapping) == archgen.profile(resolve_spec("resnet20_cifar", multipliers={"width": 2})).params
    with pytest.raises(UserError, match="not read from a file"):
        archgen.create_model(archgen.load_spec({"extends": "resnet20_cifar", "name": "x"}), num_classes=5)
    path = archgen.grammar.loader.bundled_dir() / "resnet20_cifar.yaml"
    assert n_params(archgen.create_model(str(path))) == archgen.profile("resnet20_cifar").params


def test_forward_is_forward_head_of_forward_features(resnet20):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = resnet20.forward_features(x)
        assert features.shape == (2, 64, 8, 8)
        torch.testing.assert_close(resnet20.forward_head(features), resnet20(x))
        pre = resnet20.forward_head(features, pre_logits=True)
    assert pre.shape == (2, resnet20.num_features)
    torch.testing.assert_close(resnet20.get_classifier()(pre), resnet20(x))


def test_pre_activation_pre_logits_include_the_final_norm():
    model = archgen.create_model("preact_resnet110_cifar", multipliers={"depth": 0.1}).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(x), pre_logits=True)
        expected = model.head.act(model.head.norm(model.forward_features(x))).mean((2, 3))
    torch.testing.assert_close(pre, expected)


def test_reset_classifier_replaces_the_fc_and_zero_removes_it():
    model = archgen.create_model("resnet20_cifar").eval()
    model.reset_classifier(3)
    assert model.get_classifier().out_features == 3 and model(torch.randn(1, 3, 32, 32)).shape == (1, 3)
    model.reset_classifier(0)
    assert isinstance(model.get_classifier(), torch.nn.Identity) and model.num_classes == 0
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, model.num_features)


@pytest.mark.parametrize("name", ["resnet50", "densenet121", "drn_c_26", "darknet53", "vgg11_lrn", "resnet20_cifar"])
def test_each_feature_map_is_the_output_of_the_module_feature_info_names(name):
    """timm's contract: map i is what module feature_info[i]["module"] outputs in the full model."""
    model = archgen.create_model(name, pretrained=False).eval()
    outputs = {}
    for info in model.feature_info:
        model.get_submodule(info["module"]).register_forward_hook(
            lambda module, args, out, key=info["module"]: outputs.__setitem__(key, out.clone()))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        model(x)
        maps = FeatureListNet(model)(x)
    assert len(maps) == len(model.feature_info) == len(outputs)
    for out, info in zip(maps, model.feature_info):
        torch.testing.assert_close(out, outputs[info["module"]], rtol=0, atol=0)
        assert out.shape[1] == info["num_chs"] and 64 // out.shape[-1] == info["reduction"]


def test_features_only_returns_the_chosen_maps_and_drops_the_rest():
    backbone = archgen.create_model("resnet50", features_only=True, out_indices=(2, -1))
    assert isinstance(backbone, FeatureListNet)
    assert backbone.feature_info.channels() == [512, 2048] and backbone.feature_info.reduction() == [8, 32]
    with torch.no_grad():
        maps = backbone.eval()(torch.randn(1, 3, 64, 64))
    assert [tuple(m.shape) for m in maps] == [(1, 512, 8, 8), (1, 2048, 2, 2)]
    assert not any(k.startswith("head.") for k in backbone.state_dict())
    early = archgen.create_model("resnet50", features_only=True, out_indices=[1])
    assert not any(k.startswith(("layer2", "layer3", "layer4")) for k in early.state_dict())
    stem_only = archgen.create_model("resnet50", features_only=True, out_indices=[0])
    assert {k.split(".")[0] for k in stem_only.state_dict()} == {"stem"}


def test_a_pre_activation_backbones_last_map_keeps_only_the_heads_final_norm():
    backbone = archgen.create_model("densenet121", features_only=True, out_indices=(-1,))
    assert backbone.feature_info.module_name() == ["head.act"]
    assert {k.split(".")[1] for k in backbone.state_dict() if k.startswith("head.")} == {"norm"}


def test_features_only_refuses_indices_out_of_range_and_out_indices_alone():
    with pytest.raises(UserError, match=r"out_indices \[5\] out of range: resnet18 has 5 feature maps \(0 is "
                                        r"stem\.act1's output at stride 2\)"):
        archgen.create_model("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(UserError, match="empty"):
        archgen.create_model("resnet18", features_only=True, out_indices=())
    with pytest.raises(UserError, match="last 6 feature maps"):
        archgen.create_model("resnet18", features_only=True, out_indices=6)
    with pytest.raises(UserError, match="features_only"):
        archgen.create_model("resnet18", out_indices=(1,))


def test_features_only_backbone_loads_the_full_models_pretrained_weights(tmp_path):
    from archgen.weights import save_weights

    full = archgen.create_model("resnet20_cifar")
    save_weights(full, tmp_path / "r20.safetensors")
    backbone = archgen.create_model("resnet20_cifar", pretrained=tmp_path / "r20.safetensors",
                                    features_only=True)
    torch.testing.assert_close(backbone.layer3[2].conv2.weight, full.layer3[2].conv2.weight)


def grads(net: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    net.zero_grad()
    torch.manual_seed(0)  # the same stochastic-depth draws in both runs
    out = net(x)
    sum(o.square().mean() for o in (out if isinstance(out, list) else [out])).backward()
    return {k: torch.zeros_like(p) if p.grad is None else p.grad.clone() for k, p in net.named_parameters()}


@pytest.mark.parametrize("features_only", [False, True])
def test_grad_checkpointing_recomputes_blocks_and_gives_the_same_gradients(features_only):
    model = archgen.create_model("resnet20_cifar", drop_path_rate=0.3)
    net = FeatureListNet(model) if features_only else model
    x = torch.randn(2, 3, 32, 32)
    calls = []
    model.layer2[1].register_forward_pre_hook(lambda *args: calls.append(1))
    plain = grads(net, x)
    assert len(calls) == 1
    net.set_grad_checkpointing()
    checkpointed = grads(net, x)
    assert len(calls) == 3, "a checkpointed block runs again in backward"
    for k in plain:
        torch.testing.assert_close(checkpointed[k], plain[k], msg=k)

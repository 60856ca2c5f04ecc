"""Offline ImageNet weights: the packaged EfficientNet-Lite0 maps onto timm's names correctly.

The proof is behavioural, not by names: the mapped network must put a real photo that
ships in a package (scikit-image's cat, ``data.chelsea()``) in a cat class of ImageNet.
"""
import numpy as np
import pytest
import timm
import torch

from whaleflow.data.augment import normalize
from whaleflow.errors import ConfigError
from whaleflow.models.backbones import InputNorm, adapt_state_dict, build_backbone
from whaleflow.models.pretrained import PACKAGED_WEIGHTS, map_by_position, packaged_weights

CATS = {281, 282, 283, 284, 285}  # tabby, tiger cat, Persian, Siamese, Egyptian cat


def _chelsea(size=224):
    import cv2
    from skimage import data

    return cv2.resize(data.chelsea(), (size, size), interpolation=cv2.INTER_AREA)


def test_packaged_lite0_classifies_a_real_cat_photo_in_rgb():
    weights = packaged_weights("efficientnet_lite0")
    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(weights.state_dict, strict=True)
    x = (_chelsea().astype(np.float32) / 255 - np.array(weights.mean, np.float32)) / np.array(weights.std, np.float32)
    with torch.no_grad():
        p = net(torch.from_numpy(x.transpose(2, 0, 1))[None]).softmax(1)[0]
    assert int(p.argmax()) in CATS
    assert float(p[list(CATS)].sum()) > 0.8


def test_gray_backbone_with_input_adapter_still_sees_a_cat():
    """The grey net (summed stem) fed whaleflow's own normalisation: the adapter must
    map it to the weights' normalisation, or the cat is lost."""
    import cv2

    gray = cv2.cvtColor(_chelsea(), cv2.COLOR_RGB2GRAY)
    net = build_backbone("efficientnet_lite0", pretrained=True)
    assert isinstance(net, InputNorm)
    head = timm.create_model("efficientnet_lite0", pretrained=False)
    head.load_state_dict(packaged_weights("efficientnet_lite0").state_dict)
    net.eval()
    with torch.no_grad():
        feats = net(torch.from_numpy(normalize(gray))[None, None])
        p = head.classifier(feats).softmax(1)[0]
    assert int(p.argmax()) in CATS
    # without the adapter the same pixels are off-scale (STD 0.25 vs 0.5)
    assert net.num_features == 1280 and net.forward_features(torch.zeros(1, 1, 64, 128)).shape == (1, 1280, 2, 4)


def test_stem_is_summed_to_gray_and_classifier_dropped():
    weights = packaged_weights("efficientnet_lite0")
    net = build_backbone("efficientnet_lite0", pretrained=True)
    assert torch.allclose(net.conv_stem.weight, weights.state_dict["conv_stem.weight"].sum(1, keepdim=True), atol=1e-6)
    assert "classifier.weight" not in net.model.state_dict()


def test_mapping_by_position_checks_every_shape():
    src = {"a": torch.zeros(2, 3), "b": torch.zeros(4)}
    assert list(map_by_position(src, {"x": torch.ones(2, 3), "y": torch.ones(4)}, what="t")) == ["x", "y"]
    with pytest.raises(ValueError, match="does not match"):
        map_by_position(src, {"x": torch.ones(3, 2), "y": torch.ones(4)}, what="t")
    with pytest.raises(ValueError, match="tensors in the file"):
        map_by_position(src, {"x": torch.ones(2, 3)}, what="t")


def test_registry_lists_packaged_weights_and_unpackaged_names_need_the_hub(monkeypatch):
    assert "efficientnet_lite0" in PACKAGED_WEIGHTS
    assert packaged_weights("resnet18") is None

    def offline(*a, **k):
        raise OSError("no network")

    monkeypatch.setattr(timm, "create_model", lambda name, pretrained=False, **kw: offline() if pretrained
                        else timm.models.create_model(name, pretrained=False, **kw))
    with pytest.raises(ConfigError, match="ship in a package"):
        build_backbone("resnet18", pretrained=True)


def test_adapt_state_dict_keeps_a_three_channel_stem_for_rgb():
    net = timm.create_model("efficientnet_lite0", pretrained=False, in_chans=3, num_classes=0)
    state = adapt_state_dict(packaged_weights("efficientnet_lite0").state_dict, net, in_chans=3)
    assert state["conv_stem.weight"].shape[1] == 3 and "classifier.weight" not in state


@pytest.mark.parametrize("source", ["packaged", "file"])
def test_skeleton_is_the_pretrained_network_without_its_weights(source, tmp_path):
    """``load_weights=False`` (identify's build) gives the very network ``pretrained`` gives: the same
    state-dict names and shapes and the same input normalisation (InputNorm keeps it out of the state
    dict), so a trained model's weights loaded into it compute the same vectors; a weights file named
    by the config need not exist any more."""
    if source == "packaged":
        name, pretrained = "efficientnet_lite0", True
    else:
        name, pretrained = "resnet18", str(tmp_path / "weights.pth")
        torch.save(timm.create_model(name, pretrained=False).state_dict(), pretrained)
    full = build_backbone(name, pretrained).eval()
    if source == "file":
        (tmp_path / "weights.pth").unlink()
    bare = build_backbone(name, pretrained, load_weights=False).eval()
    assert isinstance(bare, InputNorm) and isinstance(full, InputNorm)
    assert torch.equal(bare.scale, full.scale) and torch.equal(bare.shift, full.shift)
    assert {k: v.shape for k, v in bare.state_dict().items()} == {k: v.shape for k, v in full.state_dict().items()}
    bare.load_state_dict(full.state_dict())
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():
        assert torch.allclose(bare(x), full(x))
    assert not isinstance(build_backbone(name, False, load_weights=False), InputNorm)

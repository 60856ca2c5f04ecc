"""Backbones: timm names and the compact net, grayscale in, pooled features out; weights offline."""
import pytest
import timm
import torch

from whaleflow.errors import ConfigError
from whaleflow.models.backbones import build_backbone
from whaleflow.models.embedding import EmbeddingNet


@pytest.mark.parametrize("name", ["wf_compactnet", "wf_compactnet_wide", "resnet18", "resnet34", "resnet50",
                                  "seresnext50_32x4d", "densenet121"])
def test_grayscale_pooled_features_at_any_size(name):
    net = build_backbone(name).eval()
    with torch.no_grad():
        for size in (32, 48):  # global pooling makes the input size free (progressive resizing)
            out = net(torch.randn(2, 1, size, size))
            assert out.shape == (2, net.num_features)


def test_compact_net_is_in_timms_registry():
    assert timm.is_model("wf_compactnet")
    assert timm.create_model("wf_compactnet", in_chans=1, num_classes=0).num_features == 160


def test_local_weights_file_is_loaded_and_adapted_to_gray(tmp_path):
    """`pretrained: PATH` goes through timm's loader: RGB stem summed to one channel, classifier dropped."""
    torch.manual_seed(0)
    rgb = timm.create_model("resnet18", pretrained=False)  # 3 channels, 1000 classes, like published weights
    path = tmp_path / "resnet18.pth"
    torch.save(rgb.state_dict(), path)
    gray = build_backbone("resnet18", pretrained=str(path))
    assert torch.allclose(gray.conv1.weight, rgb.conv1.weight.sum(dim=1, keepdim=True), atol=1e-6)
    assert torch.equal(gray.layer4[1].conv2.weight, rgb.layer4[1].conv2.weight)


def test_missing_weights_file_and_unknown_backbone_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_backbone("resnet18", pretrained=str(tmp_path / "nope.pth"))
    with pytest.raises(ConfigError, match="unknown backbone"):
        build_backbone("resnet_eighteen")


def test_embeddings_are_unit_length():
    net = EmbeddingNet(build_backbone("wf_compactnet"), embedding_dim=16).eval()
    with torch.no_grad():
        emb = net(torch.randn(4, 1, 32, 32))
    assert torch.allclose(emb.norm(dim=1), torch.ones(4), atol=1e-5)

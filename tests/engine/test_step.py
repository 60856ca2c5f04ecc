"""The shared trainer step: same updates as the hand loop it replaced, clipping that clips, a validated key."""
import pytest
import torch

from whaleflow.config import ConfigError, TrainConfig
from whaleflow.engine.step import run_steps, train_step


def _setup(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(4)]
    return net, opt, batches


def _loss(net):
    return lambda batch: torch.nn.functional.cross_entropy(net(batch[0]), batch[1])


def test_run_steps_matches_the_hand_loop():
    net, opt, batches = _setup()
    ref, ref_opt, _ = _setup()
    ref_losses = []
    for x, y in batches:  # the loop each family wrote before
        loss = torch.nn.functional.cross_entropy(ref(x), y)
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_opt.step()
        ref_losses.append(float(loss))
    hooked = []
    out = run_steps(opt, _loss(net), batches, torch.device("cpu"), before_step=hooked.append)
    assert hooked == [0, 1, 2, 3]
    assert out["loss"] == pytest.approx(sum(ref_losses) / 4)
    for a, b in zip(net.parameters(), ref.parameters()):
        assert torch.equal(a, b)


def test_grad_clip_bounds_the_update():
    net, _, batches = _setup()
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    before = [p.detach().clone() for p in net.parameters()]
    big = lambda batch: 1000.0 * _loss(net)(batch)  # noqa: E731  (a gradient far above the clip)
    train_step(opt, big, batches[0], torch.device("cpu"), grad_clip=0.5)
    step = torch.sqrt(sum(((p.detach() - b) ** 2).sum() for p, b in zip(net.parameters(), before)))
    assert float(step) == pytest.approx(0.5, rel=1e-4)  # lr 1 × the clipped norm


@pytest.mark.parametrize("bad", [0, -1.0])
def test_grad_clip_is_validated(bad):
    with pytest.raises(ConfigError, match="train.grad_clip"):
        TrainConfig(grad_clip=bad)
    assert TrainConfig(grad_clip=1.0).grad_clip == 1.0

"""The one training step every trainable family runs (siamese, metric, arcface; frozen trains nothing).

A family supplies ``compute_loss(batch)``; the step owns what must be the same for all of them:
train mode is set by the caller once per epoch, then per batch: per-step hooks (a per-step learning
rate), zero_grad, the loss under autocast (bf16 on CUDA, none on CPU), backward, optional gradient
clipping (``train.grad_clip``) and the optimizer step. Clipping or an accumulation is then one edit here,
not one per family.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterable

import torch

from .device import autocast


def full_precision(device: torch.device):
    """Leave autocast for a loss computed in float32 (the step runs ``compute_loss`` under autocast,
    and a loss in bf16 would round its sums)."""
    if device.type == "cuda":
        return torch.autocast("cuda", enabled=False)
    return contextlib.nullcontext()


def train_step(
    optimizer: torch.optim.Optimizer,
    compute_loss: Callable[[Any], torch.Tensor],
    batch: Any,
    device: torch.device,
    grad_clip: float | None = None,
    before_step: Callable[[], None] | None = None,
) -> torch.Tensor:
    """One optimisation step on ``batch``; returns the detached loss (kept on the device, so that
    an epoch's sum is read once, not synchronised every step)."""
    if before_step is not None:
        before_step()
    optimizer.zero_grad(set_to_none=True)
    with autocast(device):
        loss = compute_loss(batch)
    loss.backward()
    if grad_clip is not None:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    return loss.detach()


def run_steps(
    optimizer: torch.optim.Optimizer,
    compute_loss: Callable[[Any], torch.Tensor],
    batches: Iterable[Any],
    device: torch.device,
    grad_clip: float | None = None,
    before_step: Callable[[int], None] | None = None,
) -> dict[str, float]:
    """An epoch's steps; ``before_step(step)`` is the per-step schedule hook. Returns the mean loss."""
    total = torch.zeros((), device=device)
    count = 0
    for step, batch in enumerate(batches):
        hook = (lambda s=step: before_step(s)) if before_step is not None else None
        total += train_step(optimizer, compute_loss, batch, device, grad_clip, hook)
        count += 1
    return {"loss": float(total) / max(count, 1)}

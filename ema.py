"""An exponential moving average of a model's weights, as FT-CLIP fine-tunes with it (Dong et al.,
arXiv 2212.06138, §2.1 "Exponential Moving Average", Table 3 / Table 10: momentum 0.9998).

    ema <- decay * ema + (1 - decay) * param        after every optimizer step (not every micro-batch)

Why it helps (FT-CLIP Table 3): with EMA, 4 of 5 learning rates gain +0.1 to +0.9 top-1, and the worse
the lr the larger the gain; the paper's reading is that fine-tuning should move CLIP's representation
as little as possible, and an average of recent weights drifts slower than the weights themselves.
The horizon is 1 / (1 - decay) = 5000 steps, i.e. 8 of FT-CLIP's 625-step epochs: after epoch 0 the
pre-trained weights still carry 0.9998^625 = 0.88 of the average, which is why the EMA's first
evaluations are far below the raw model's (FT-CLIP's log: 20.0% vs 52.1%).

The average is a separate fp32 copy that is only evaluated. It is never copied back into the live
model: that would be Lookahead (hlb-CIFAR10 / airbench do it), another optimizer, not the papers' EMA.
Parameters are matched by name, not by position, so a model whose parameters are registered in
another order still averages correctly (the bug hlb-CIFAR10's NetworkEMA marks in its own code).
Buffers (e.g. BatchNorm statistics) are copied, as timm's ModelEma does for every state_dict entry
that is not a float parameter.

Batch size. The paper's 0.9998 is per step at a total batch of 2048 (Table 10); the lr follows the
batch linearly, but a fixed per-step decay does not: at batch 256 a run takes 8x more steps, so the
same 0.9998 averages over 8x fewer images (a horizon of ~1 epoch instead of ~8). `decay_for_batch`
keeps the horizon in images: after n images the old weights keep decay^(n / 2048) of the average at
any batch, i.e. decay_b = decay ** (b / 2048) per step of b images.
"""
import copy

import torch
import torch.nn as nn


def unwrap(model):
    """The plain module under torch.compile (`._orig_mod`) and DDP / DataParallel (`.module`, their
    only child)."""
    while True:
        if isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        elif list(model._modules) == ["module"]:
            model = model.module
        else:
            return model


def decay_for_batch(decay, batch, ref_batch):
    """Per-step decay at a total batch `batch` with the horizon (in images) of `decay` at `ref_batch`:
    decay ** (batch / ref_batch). 0.9998 at 2048 -> 0.999975 at 256, 0.99981 at 1920; 0 stays 0 (no EMA)."""
    return decay ** (batch / ref_batch)


class ModelEma:
    """`ModelEma(model, decay)`; `ema.update(model)` once per optimizer step; evaluate `ema.module`."""

    def __init__(self, model, decay=0.9998):
        self.decay = decay
        # fp32 even under bf16 training
        self.module = copy.deepcopy(unwrap(model)).float().eval().requires_grad_(False)
        for p in self.module.parameters():
            p.grad = None                               # a deepcopy carries .grad along; the average has none

    @torch.no_grad()
    def update(self, model):
        live = unwrap(model)
        params, buffers = dict(live.named_parameters()), dict(live.named_buffers())
        for name, avg in self.module.named_parameters():
            if name not in params:
                raise KeyError(f"EMA parameter '{name}' is not in the live model; was the model rebuilt "
                               f"differently?")
            # lerp_(p, w) = avg + w * (p - avg) = (1 - w) * avg + w * p, w = 1 - decay: exact at w = 0, 1
            avg.lerp_(params[name].detach().float(), 1.0 - self.decay)
        for name, buf in self.module.named_buffers():
            if name in buffers:
                buf.copy_(buffers[name])

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict):
        self.module.load_state_dict(state_dict)

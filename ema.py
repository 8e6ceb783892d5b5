"""The exponential moving average of a model's weights that FT-CLIP fine-tunes with (Dong et al.,
arXiv 2212.06138, §2.1 "Exponential Moving Average", Tables 3 and 10: 0.9998 per step):

    ema <- decay * ema + (1 - decay) * param     after each optimizer step (not each micro-batch)

A separate fp32 copy, only evaluated, never copied back into the live model (that would be
Lookahead, another optimizer); parameters matched by name, buffers (BatchNorm statistics) copied.
FT-CLIP Table 3: the EMA helps most at too-large learning rates; it drifts slower than the weights.
NOTE(paper): 0.9998 is per step at a total batch of 2048; at another batch `decay_for_batch` keeps
the same horizon in images, decay ** (batch / 2048), where a fixed 0.9998 would not (at batch 256
it would average over 8x fewer images); --ema_decay sets the per-step value as it is.
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
    """Per-step decay at a total batch `batch` with the horizon (in images) of `decay` at
    `ref_batch`: decay ** (batch / ref_batch). 0.9998 at 2048 -> 0.999975 at 256, 0.99981 at 1920;
    0 stays 0 (no EMA)."""
    return decay ** (batch / ref_batch)


def add_ema_args(parser):
    """The EMA's flags (FT-CLIP §2.1, Table 3); `resolve_ema_decay` gives the decay per step."""
    g = parser.add_argument_group("EMA (FT-CLIP §2.1, Table 3)")
    g.add_argument("--ema_decay", type=float, default=None, help="EMA decay per step, exactly (0: "
                   "none); None: --ema_base_decay ** (eff_batch / lr_batch), the same horizon")
    g.add_argument("--ema_base_decay", type=float, default=0.9998, help="decay per step at a "
                   "batch of --lr_batch (FT-CLIP: 0.9998 at 2048)")


def resolve_ema_decay(args, parser):
    """args.ema_decay: the decay per step at this run's batch, the horizon in images kept
    (decay_for_batch; NOTE(paper): see the module docstring); --ema_decay sets it exactly."""
    args.ema_scaled = args.ema_decay is None
    if args.ema_scaled:
        args.ema_decay = decay_for_batch(args.ema_base_decay, args.eff_batch_size, args.lr_batch)
    if not 0 <= args.ema_decay < 1:
        flag = "--ema_base_decay" if args.ema_scaled else "--ema_decay"
        parser.error(f"{flag} gives an EMA decay of {args.ema_decay:g}, not in [0, 1) (0 = no "
                     f"EMA; FT-CLIP: 0.9998 at batch 2048)")


def describe_decay(decay, scaled, base, batch, ref_batch):
    """One line for a run's start: the decay per step, where it comes from, its horizon."""
    if not decay:
        return "EMA off"
    if scaled:
        how = (f"the recipe's {base:g} at batch {ref_batch}, scaled to batch {batch}: "
               f"^({batch}/{ref_batch})")
    else:
        how = (f"--ema_decay exactly; the recipe's {base:g} at batch {ref_batch} would be "
               f"{decay_for_batch(base, batch, ref_batch):.6g}")
    return f"EMA decay {decay:.6g} per step ({how}; horizon {1 / (1 - decay):.0f} steps)"


class ModelEma:
    """`ModelEma(model, decay)`; `.update(model)` once per optimizer step; evaluate `.module`."""

    def __init__(self, model, decay=0.9998):
        self.decay = decay
        # fp32 even under bf16 training
        self.module = copy.deepcopy(unwrap(model)).float().eval().requires_grad_(False)
        for p in self.module.parameters():
            p.grad = None                               # a deepcopy carries .grad along

    @torch.no_grad()
    def update(self, model):
        live = unwrap(model)
        params, buffers = dict(live.named_parameters()), dict(live.named_buffers())
        for name, avg in self.module.named_parameters():
            if name not in params:
                raise KeyError(f"EMA parameter '{name}' is not in the live model; was the model "
                               f"rebuilt differently?")
            # lerp_(p, w) = avg + w (p - avg) = (1 - w) avg + w p, w = 1 - decay: exact at w = 0, 1
            avg.lerp_(params[name].detach().float(), 1.0 - self.decay)
        for name, buf in self.module.named_buffers():
            if name in buffers:
                buf.copy_(buffers[name])

    def state_dict(self):
        return self.module.state_dict()

    def load_state_dict(self, state_dict):
        self.module.load_state_dict(state_dict)

"""ema.py: FT-CLIP's weight EMA is exactly ema <- decay * ema + (1 - decay) * param, matched by name, on a separate copy."""
import pytest
import torch
import torch.nn as nn

from ema import ModelEma, unwrap
from expect import brief, came


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 3)
        self.bn = nn.BatchNorm1d(3)
        self.b = nn.Linear(3, 3)

    def forward(self, x):
        return self.b(self.bn(self.a(x)))


class Reordered(nn.Module):
    """The same names and shapes as Net, registered in another order: a positional zip would pair a with b."""

    def __init__(self):
        super().__init__()
        self.b = nn.Linear(3, 3)
        self.bn = nn.BatchNorm1d(3)
        self.a = nn.Linear(3, 3)


def _perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g))
        model.bn.running_mean.add_(torch.randn(3, generator=g))   # a buffer that changed too
        model.bn.num_batches_tracked += 7
    return model


def test_decay_0_copies_the_model_exactly():
    torch.manual_seed(0)
    model = Net()
    ema = ModelEma(model, decay=0.0)
    _perturb(model, 1)
    ema.update(model)
    for (k, v), e in zip(model.state_dict().items(), ema.state_dict().values()):
        assert torch.equal(v, e), f"FT-CLIP §2.1 EMA: decay 0: expected an exact copy; got {k}: {came(e, v)}"


def test_decay_1_freezes_the_average():
    torch.manual_seed(0)
    model = Net()
    ema = ModelEma(model, decay=1.0)
    before = {k: v.clone() for k, v in ema.module.named_parameters()}
    for s in range(3):
        ema.update(_perturb(model, s))
    for k, p in ema.module.named_parameters():
        assert torch.equal(p, before[k]), f"FT-CLIP §2.1 EMA: decay 1: expected no change; got {k}: {came(p, before[k])}"


def _set_(model, value):
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
    return model


def test_one_step_equals_the_formula_for_every_parameter_and_copies_buffers():
    model = _set_(Net(), 1.0)
    ema = ModelEma(model, decay=0.75)
    _set_(model, 3.0)
    model.bn.running_mean.fill_(2.5)                                   # a buffer that changed too
    model.bn.num_batches_tracked += 7
    ema.update(model)
    for k, p in ema.module.named_parameters():
        # hand-computed: 0.75 x 1 + 0.25 x 3 = 1.5 (the average moves a quarter of the way)
        assert torch.allclose(p, torch.full_like(p, 1.5)), (
            f"FT-CLIP §2.1 EMA: {k}: average 1, parameter 3, decay 0.75: expected 0.75 x 1 + 0.25 x 3 = 1.5 "
            f"everywhere; got {brief(p)}")
    # buffers: copied, not averaged
    assert torch.equal(ema.module.bn.running_mean, model.bn.running_mean), (
        "FT-CLIP §2.1 EMA: expected the buffers (BatchNorm running_mean) copied from the model (2.5), not "
        f"averaged; got {brief(ema.module.bn.running_mean)}")
    assert ema.module.bn.num_batches_tracked.item() == model.bn.num_batches_tracked.item() == 7, (
        "FT-CLIP §2.1 EMA: expected num_batches_tracked copied (7), got "
        f"{ema.module.bn.num_batches_tracked.item()}")


def test_the_average_is_an_fp32_eval_copy_sharing_no_storage():
    model = Net().train().to(torch.bfloat16)
    ema = ModelEma(model)
    assert not ema.module.training and all(p.dtype == torch.float32 and not p.requires_grad
                                           for p in ema.module.parameters())
    live = {t.untyped_storage().data_ptr() for t in model.state_dict().values()}
    assert not live & {t.untyped_storage().data_ptr() for t in ema.module.state_dict().values()}
    with torch.no_grad():
        model.a.weight.add_(1.0)                                   # changing the live model leaves the average alone
    assert not torch.equal(ema.module.a.weight, model.a.weight.float())


def test_parameters_are_matched_by_name_not_position():
    model = Net()
    with torch.no_grad():                                              # the average: a = 1, b = 5
        for name, p in model.named_parameters():
            p.fill_(1.0 if name.startswith("a.") else 5.0 if name.startswith("b.") else 0.0)
    ema = ModelEma(model, decay=0.5)
    other = Reordered()                                                # live: a = 3, b = 7, registered b first
    with torch.no_grad():
        for name, p in other.named_parameters():
            p.fill_(3.0 if name.startswith("a.") else 7.0 if name.startswith("b.") else 0.0)
    first = [n for n, _ in other.named_parameters()][0]
    assert first == "b.weight", f"FT-CLIP §2.1 EMA (the premise): expected b.weight registered first, got {first}"
    ema.update(other)
    # hand-computed: a = (1 + 3) / 2 = 2 and b = (5 + 7) / 2 = 6; pairing by position would give a (1 + 7) / 2 = 4
    for name, want in [("a.weight", 2.0), ("b.weight", 6.0)]:
        p = ema.module.get_parameter(name)
        assert torch.allclose(p, torch.full_like(p, want)), (
            f"FT-CLIP §2.1 EMA: expected parameters matched BY NAME ({name} with {name}), not by position: "
            f"{name} = {want} everywhere; got {brief(p)}")


def test_state_dict_round_trip():
    torch.manual_seed(0)
    model = Net()
    ema = ModelEma(model, decay=0.9)
    ema.update(_perturb(model, 1))
    fresh = ModelEma(Net(), decay=0.9)
    fresh.load_state_dict(ema.state_dict())
    for (k, v), w in zip(ema.state_dict().items(), fresh.state_dict().values()):
        assert torch.equal(v, w), k


class Wrapper(nn.Module):
    """What DDP looks like from outside: the model is its only child, `.module`."""

    def __init__(self, module):
        super().__init__()
        self.module = module


def test_ddp_and_compile_wrappers_are_unwrapped():
    torch.manual_seed(0)
    model = Net()
    compiled = torch.compile(model)                               # an OptimizedModule; nothing compiles until called
    assert unwrap(compiled) is model and unwrap(Wrapper(compiled)) is model, (
        "FT-CLIP §2.1 EMA: expected unwrap to return the plain model under torch.compile and DDP-like "
        f"wrappers; got {type(unwrap(compiled)).__name__}, {type(unwrap(Wrapper(compiled))).__name__}")
    ema = ModelEma(Wrapper(compiled), decay=0.0)
    assert set(ema.state_dict()) == set(model.state_dict()), (   # no "module." / "_orig_mod." prefixes
        f"FT-CLIP §2.1 EMA: expected the plain model's names, got {sorted(ema.state_dict())[:4]}")
    _perturb(model, 2)
    ema.update(Wrapper(compiled))
    assert torch.equal(ema.module.b.weight, model.b.weight), (
        "FT-CLIP §2.1 EMA: decay 0 through a DDP / compile wrapper: expected the unwrapped model's weights "
        f"copied; {came(ema.module.b.weight, model.b.weight)}")


def test_decay_for_batch_keeps_the_horizon_in_images():
    from ema import decay_for_batch
    # FT-CLIP Table 3 / Table 10: 0.9998 per step at a total batch of 2048
    assert decay_for_batch(0.9998, 2048, 2048) == 0.9998
    assert decay_for_batch(0.9998, 256, 2048) == pytest.approx(0.9998 ** 0.125, rel=1e-15)
    assert decay_for_batch(0.9998, 256, 2048) == pytest.approx(0.999974998, abs=1e-9)   # by hand: exp(ln(.9998) / 8)
    assert decay_for_batch(0.0, 256, 2048) == 0.0                                        # no EMA stays no EMA
    # 8 steps of 256 images leave the starting weights exactly the share one step of 2048 leaves them: 0.9998
    start = nn.Linear(3, 3)
    ema = ModelEma(start, decay=decay_for_batch(0.9998, 256, 2048))
    zero = nn.Linear(3, 3)
    with torch.no_grad():
        for p in zero.parameters():
            p.zero_()
    for _ in range(8):
        ema.update(zero)
    torch.testing.assert_close(ema.module.weight, 0.9998 * start.weight.detach(), rtol=1e-6, atol=0)

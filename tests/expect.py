"""Expected values for the tests, and what a failing test prints on its first line.

    torch.testing.assert_close(got, want, msg=lambda m: f"MAE §3: expected ...; {came(got, want)}\\n{m}")

`came` names the worst element ("got 0.5012 at (1, 3), expected 0.5213; max |diff| 0.02, 24 of 96 elements
off"), or the shapes when they differ; `brief` shows a tensor in one short line.

`fixture(name)` loads tests/fixtures/<name>.pt: inputs and expected outputs computed once by the reference
code (timm, open_clip, the official MAE; tests/reference/fixtures.py makes them and checks they are still
what that code computes). `fill_(module, seed)` gives a module the same weights on every machine (uniform
numbers from a seeded generator, parameters in sorted-name order: two codebases with the same names get the
same weights), the weights those fixtures were computed with.
"""
import os

import torch

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def fixture(name):
    """The stored tensors of tests/fixtures/<name>.pt (a dict)."""
    return torch.load(os.path.join(FIXTURES, name + ".pt"), weights_only=True)


@torch.no_grad()
def fill_(module, seed, scale=0.1):
    """Every parameter <- uniform(-scale, scale) from torch.Generator(seed), in sorted-name order."""
    g = torch.Generator().manual_seed(seed)
    for _, p in sorted(module.named_parameters()):
        p.copy_((torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1).to(p.dtype) * scale)
    return module


def brief(t, n=4):
    """'(2, 16) float32 [0.1234, -0.5, 1.25, ...]' (a tensor), or repr for anything else."""
    if not isinstance(t, torch.Tensor):
        return repr(t)
    flat = t.detach().reshape(-1)
    vals = ", ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in flat[:n].tolist())
    more = ", ..." if flat.numel() > n else ""
    dtype = str(t.dtype).removeprefix("torch.")
    return f"{tuple(t.shape)} {dtype} [{vals}{more}]" if t.dim() else f"{t.item():.6g}"


def came(got, want, atol=1e-5, rtol=1e-4):
    """One line: where `got` differs most from `want`, and by how much (or why they cannot be compared)."""
    if not isinstance(got, torch.Tensor) or not isinstance(want, torch.Tensor):
        return f"got {brief(got)}, expected {brief(want)}"
    if got.shape != want.shape:
        return f"got shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    g, w = got.detach().double(), want.detach().double()
    if g.numel() == 0:
        return "got an empty tensor"
    d = (g - w).abs()
    d = torch.where(torch.isnan(d), torch.full_like(d, float("inf")), d)
    i = int(d.reshape(-1).argmax())
    at = tuple(int(k) for k in torch.unravel_index(torch.tensor(i), g.shape)) if g.dim() else ()
    bad = int((d > atol + rtol * w.abs()).sum())
    where = f" at {at}" if at else ""
    return (f"got {g.reshape(-1)[i].item():.6g}{where}, expected {w.reshape(-1)[i].item():.6g}; max |diff| "
            f"{d.reshape(-1)[i].item():.2g}, {bad} of {g.numel()} elements off")

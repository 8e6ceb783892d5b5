"""Graded tests of the course assignment `masking` that test_masking.py did not have: MAE §3's shuffle read off the
noise itself, and statistics (uniform positions; BEiT's masks are made of blocks, unlike random ones)."""
import torch
import torch.nn.functional as F

from masking import BlockMaskGenerator, random_masking


def test_kept_tokens_are_the_smallest_noise_in_noise_order():
    B, N, ratio = 3, 20, 0.75
    keep = int(N * (1 - ratio))
    x = torch.arange(B * N, dtype=torch.float).view(B, N, 1) % N                 # token n carries the value n
    vis, mask, ids_restore = random_masking(x, ratio, generator=torch.Generator().manual_seed(5))
    noise = torch.rand(B, N, generator=torch.Generator().manual_seed(5))       # MAE §3: the same uniform noise
    for b in range(B):
        by_noise = sorted(range(N), key=lambda n: noise[b, n].item())            # ascending: small noise is kept
        assert vis[b, :, 0].long().tolist() == by_noise[:keep]                  # kept ones, in noise order
        assert [n for n in range(N) if not mask[b, n]] == sorted(by_noise[:keep])
        assert ids_restore[b].tolist() == [by_noise.index(n) for n in range(N)]  # where patch n went in the shuffle


def test_random_masks_are_uniform_over_positions():
    x = torch.zeros(4000, 49, 2)
    _, mask, _ = random_masking(x, 0.75, generator=torch.Generator().manual_seed(0))
    assert (mask.sum(1) == 49 - 12).all()                                        # int(49 * 0.25) = 12 kept per image
    freq = mask.float().mean(0)                                                  # (N,): P(patch n removed)
    assert (freq - 37 / 49).abs().max() < 0.03, freq                             # uniform: no position favoured


def _blockiness(mask):
    """Fraction of masked cells with at least two masked 4-neighbours (cells of a >= 2 x 2 block all have)."""
    m = F.pad(mask.float()[None, None], (1, 1, 1, 1))[0, 0]
    nb = m[:-2, 1:-1] + m[2:, 1:-1] + m[1:-1, :-2] + m[1:-1, 2:]
    return float(((nb >= 2) & mask).sum() / mask.sum())


def test_block_masks_are_made_of_blocks():
    g = torch.Generator().manual_seed(0)
    for grid, n, exact in [(14, 75, False), (14, 75, True), (16, 105, False)]:   # MaskDistill, BEiT v2, EVA
        gen = BlockMaskGenerator(grid, n, exact=exact)
        scores = [_blockiness(gen(g)) for _ in range(200)]
        assert sum(scores) / len(scores) > 0.95, (grid, n, exact, sum(scores) / len(scores))
    # the same statistic separates a uniformly random mask of the same size (measured: 0.43; blocks: 0.99)
    rnd = []
    for _ in range(200):
        m = torch.zeros(196, dtype=torch.bool)
        m[torch.randperm(196, generator=g)[:75]] = True
        rnd.append(_blockiness(m.view(14, 14)))
    assert sum(rnd) / len(rnd) < 0.6

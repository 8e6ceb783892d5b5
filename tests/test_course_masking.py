"""Graded tests of the course assignment `masking` that test_masking.py did not have: MAE §3's shuffle read
off the noise itself, and statistics (uniform positions; BEiT's masks are made of blocks, unlike random
ones)."""
import torch
import torch.nn.functional as F

from masking import BlockMaskGenerator, random_masking


def test_kept_tokens_are_the_smallest_noise_in_noise_order():
    B, N, ratio = 3, 20, 0.75
    keep = int(N * (1 - ratio))
    x = torch.arange(B * N, dtype=torch.float).view(B, N, 1) % N                 # token n carries the value n
    vis, mask, ids_restore = random_masking(x, ratio, generator=torch.Generator().manual_seed(5))
    # MAE §3: the same uniform noise
    noise = torch.rand(B, N, generator=torch.Generator().manual_seed(5))
    for b in range(B):
        # ascending: small noise is kept
        by_noise = sorted(range(N), key=lambda n: noise[b, n].item())
        got = vis[b, :, 0].long().tolist()
        assert got == by_noise[:keep], (                                         # kept ones, in noise order
            f"MAE §3 'Simple implementation': image {b}: expected the patches of the {keep} smallest noise "
            f"values (noise = torch.rand(B, N, generator=generator)), in noise order: {by_noise[:keep]}, got "
            f"{got}")
        unmasked = [n for n in range(N) if not mask[b, n]]
        assert unmasked == sorted(by_noise[:keep]), (
            f"MAE §3: image {b}: expected mask False (kept) at patches {sorted(by_noise[:keep])}, got "
            f"{unmasked}")
        want = [by_noise.index(n) for n in range(N)]
        # where patch n went in the shuffle
        assert ids_restore[b].tolist() == want, (
            f"MAE §3 'Simple implementation': image {b}: expected ids_restore[n] = the place of patch n in "
            f"the shuffle: {want}, got {ids_restore[b].tolist()}")


def test_random_masks_are_uniform_over_positions():
    x = torch.zeros(4000, 49, 2)
    _, mask, _ = random_masking(x, 0.75, generator=torch.Generator().manual_seed(0))
    # int(49 * 0.25) = 12 kept per image
    assert (mask.sum(1) == 49 - 12).all(), (
        "MAE §3: expected 37 of 49 removed per image (int(49 * 0.25) = 12 kept), got "
        f"{mask.sum(1).unique().tolist()}")
    freq = mask.float().mean(0)                                                  # (N,): P(patch n removed)
    worst = int((freq - 37 / 49).abs().argmax())
    # uniform: no position favoured
    assert (freq - 37 / 49).abs().max() < 0.03, (
        f"MAE §3: expected every patch removed with probability 37/49 = 0.755 +- 0.03 (uniform), got "
        f"{freq[worst]:.3f} at patch {worst}")


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
        assert sum(scores) / len(scores) > 0.95, (
            f"BEiT Algorithm 1: {n} of {grid} x {grid}, exact={exact}: expected masks made of rectangles (> "
            f"95% of masked cells with >= 2 masked neighbours), got {sum(scores) / len(scores):.2f}")
    # the same statistic separates a uniformly random mask of the same size (measured: 0.43; blocks: 0.99)
    rnd = []
    for _ in range(200):
        m = torch.zeros(196, dtype=torch.bool)
        m[torch.randperm(196, generator=g)[:75]] = True
        rnd.append(_blockiness(m.view(14, 14)))
    score = sum(rnd) / len(rnd)
    assert score < 0.6, f"BEiT Algorithm 1 (the statistic itself): random masks score {score:.2f}, not < 0.6"

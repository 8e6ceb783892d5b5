"""Graded tests of the course assignment `masking` that test_masking.py did not have: MAE §3's shuffle read
off the noise itself, and statistics (uniform positions; BEiT's masks are made of blocks, unlike random
ones)."""
import torch
import torch.nn.functional as F

from masking import BlockMaskGenerator, random_masking


# random_masking of 3 x 20 tokens at ratio 0.75 with torch.Generator().manual_seed(5), computed once by the
# reference code: the kept patches in the order of the shuffle, and ids_restore
KEPT_SEED5 = [[8, 18, 12, 5, 1], [2, 12, 17, 5, 10], [2, 17, 18, 13, 1]]
IDS_RESTORE_SEED5 = [[14, 4, 15, 13, 16, 3, 5, 12, 0, 19, 8, 6, 2, 10, 11, 7, 18, 9, 1, 17],
                     [12, 5, 0, 15, 18, 3, 11, 13, 7, 8, 4, 6, 1, 10, 16, 14, 17, 2, 9, 19],
                     [8, 4, 0, 11, 15, 16, 18, 9, 14, 5, 17, 7, 6, 3, 12, 10, 13, 1, 2, 19]]


def test_kept_tokens_are_the_smallest_noise_in_noise_order():
    B, N, ratio = 3, 20, 0.75
    x = torch.arange(B * N, dtype=torch.float).view(B, N, 1) % N                 # token n carries the value n
    vis, mask, ids_restore = random_masking(x, ratio, generator=torch.Generator().manual_seed(5))
    noise = torch.rand(B, N, generator=torch.Generator().manual_seed(5))        # MAE §3: the same noise
    for b in range(B):
        kept = KEPT_SEED5[b]
        got = vis[b, :, 0].long().tolist()
        assert got == kept, (                                                   # kept ones, in noise order
            f"MAE §3 'Simple implementation': image {b}: expected the patches of the 5 smallest noise values "
            f"(noise = torch.rand(B, N, generator=generator)), smallest first: {kept}, got {got}")
        rest = [n for n in range(N) if n not in kept]
        assert noise[b, kept].max() < noise[b, rest].min() and bool((noise[b, kept].diff() > 0).all()), (
            f"MAE §3: image {b}: the premise: the stored patches {kept} hold the smallest noise, in ascending "
            f"order; got noise {[round(v, 3) for v in noise[b, kept].tolist()]}")
        unmasked = [n for n in range(N) if not mask[b, n]]
        assert unmasked == sorted(kept), (
            f"MAE §3: image {b}: expected mask False (kept) at patches {sorted(kept)}, got {unmasked}")
        assert ids_restore[b].tolist() == IDS_RESTORE_SEED5[b], (
            f"MAE §3 'Simple implementation': image {b}: expected ids_restore[n] = the place of patch n in "
            f"the shuffle: {IDS_RESTORE_SEED5[b]}, got {ids_restore[b].tolist()}")


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
    assert score < 0.6, f"BEiT Algorithm 1 (the statistic itself): expected random masks < 0.6, got {score:.2f}"

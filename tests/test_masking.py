"""masking.py does exactly what MAE §3 and BEiT's block-wise generator do."""
import statistics

import pytest
import torch

import masking
from masking import BlockMaskGenerator, grid_mask, random_masking


def test_random_masking_exact_counts_and_kept_tokens():
    g = torch.Generator().manual_seed(0)
    x = torch.arange(2 * 196, dtype=torch.float).view(2, 196, 1).expand(-1, -1, 4).contiguous()
    for ratio, keep in [(0.75, 49), (0.5, 98), (0.9, 19), (0.0, 196)]:          # N_keep = int(N (1 - r))
        vis, mask, ids_restore = random_masking(x, ratio, generator=g)
        assert vis.shape == (2, keep, 4) and mask.dtype == torch.bool, (
            f"MAE §3: ratio {ratio}: expected x_visible (B, N_keep, D) = (2, {keep}, 4) with N_keep = int(N "
            f"(1 - ratio)) and a bool mask, got {tuple(vis.shape)} and {mask.dtype}")
        assert (mask.sum(1) == 196 - keep).all(), (
            f"MAE §3: ratio {ratio}: expected {196 - keep} of 196 patches removed per image (N_keep = int(N "
            f"(1 - ratio)) = {keep} kept), got {mask.sum(1).tolist()} (mask True = removed)")
        for b in range(2):                                      # the visible tokens are the unmasked ones
            got, want = set(vis[b, :, 0].long().tolist()), set(x[b, ~mask[b], 0].long().tolist())
            assert got == want, (
                f"MAE §3: ratio {ratio}, image {b}: expected the visible tokens to be those where mask is "
                f"False; got {len(got - want)} visible token(s) where mask is True")


def test_ids_restore_inverts_the_shuffle():
    g = torch.Generator().manual_seed(1)
    B, N = 3, 64
    x = torch.arange(B * N, dtype=torch.float).view(B, N, 1) % N               # token n carries the value n
    vis, mask, ids_restore = random_masking(x, 0.75, generator=g)
    keep = vis.shape[1]
    for b in range(B):
        order = sorted(ids_restore[b].tolist())
        assert order == list(range(N)), (
            f"MAE §3 'Simple implementation': image {b}: expected ids_restore to be a permutation of 0..{N - 1}, "
            f"got {ids_restore[b].tolist()[:8]}...")
        kept = vis[b, :, 0].long()                                             # the patches, in shuffle order
        places = ids_restore[b, kept].tolist()
        assert places == list(range(keep)), (
            f"MAE §3 'Simple implementation': image {b}: expected ids_restore[patch] = its place in the "
            f"shuffle: the k-th kept patch at place k (0..{keep - 1}), got {places}")
        removed = ids_restore[b, mask[b]]
        assert bool((removed >= keep).all()), (
            f"MAE §3: image {b}: expected every removed patch placed after the {keep} kept ones (where the mask "
            f"tokens go), got places {sorted(removed.tolist())[:4]}...")


def test_random_masking_same_seed_same_mask():
    x = torch.randn(4, 49, 3)
    a = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    b = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    c = random_masking(x, 0.75, torch.Generator().manual_seed(8))[1]
    assert torch.equal(a, b) and not torch.equal(a, c), (
        "MAE §3: expected the same mask from the same generator seed (draw the noise from `generator`) and "
        f"another from another seed; got same seed equal: {torch.equal(a, b)}, other seed equal: "
        f"{torch.equal(a, c)}")


def test_block_masks_never_exceed_n_and_mean_near_beit():
    g = torch.Generator().manual_seed(0)
    gen = BlockMaskGenerator(14, 75)                          # MaskDistill / BEiT: 75 of 14x14, min block 16
    counts = [int(gen(g).sum()) for _ in range(1500)]
    assert max(counts) <= 75, f"BEiT Algorithm 1: expected at most 75 masked patches, got {max(counts)}"
    # reference §1.5 (BEiT's own generator, 20k samples): mean 74.47, P(sum == 75) = 0.666
    mean, p75 = statistics.mean(counts), sum(c == 75 for c in counts) / len(counts)
    assert abs(mean - 74.47) < 0.15, (
        f"BEiT Algorithm 1: expected a mean of 74.47 +- 0.15 masked of 75 (BEiT's generator), got {mean:.2f}")
    assert abs(p75 - 0.666) < 0.05, (
        "BEiT Algorithm 1: expected exactly 75 masked in 0.666 +- 0.05 of the masks (BEiT's generator), got "
        f"{p75:.3f}")


def test_block_masks_exact_variant_masks_exactly_n():
    g = torch.Generator().manual_seed(0)
    for grid, n in [(14, 75), (16, 105), (4, 6), (14, 0)]:
        gen = BlockMaskGenerator(grid, n, exact=True)
        for _ in range(50):
            m = gen(g)
            assert m.shape == (grid, grid) and m.dtype == torch.bool and int(m.sum()) == n, (
                f"BEiT v2 (exact=True): expected a ({grid}, {grid}) bool grid with exactly {n} masked, got "
                f"{tuple(m.shape)} {m.dtype} with {int(m.sum())}")


def test_single_block_never_spans_full_row_or_column(monkeypatch):
    placed = []
    real = BlockMaskGenerator._place_block

    def spy(self, mask, max_new, g):                           # record each accepted block's footprint
        before = mask.clone()
        new = real(self, mask, max_new, g)
        if new:
            rows, cols = (mask & ~before).nonzero(as_tuple=True)
            placed.append((int(rows.max() - rows.min() + 1), int(cols.max() - cols.min() + 1)))
        return new
    monkeypatch.setattr(BlockMaskGenerator, "_place_block", spy)
    g = torch.Generator().manual_seed(0)
    gen = BlockMaskGenerator(14, 75)
    for _ in range(300):
        gen(g)
    assert placed, "BEiT Algorithm 1: expected _place_block to place some blocks, got none in 300 masks"
    tallest, widest = max(h for h, _ in placed), max(w for _, w in placed)
    assert tallest < 14 and widest < 14, (
        "BEiT Algorithm 1: expected every block shorter and narrower than the 14 x 14 grid (h < Gh, w < Gw), "
        f"got a block {tallest} tall and one {widest} wide")


def test_block_mask_same_generator_seed_same_mask_and_row_major_batch():
    gen = BlockMaskGenerator(14, 75, exact=True)
    a = gen(torch.Generator().manual_seed(3))
    again = gen(torch.Generator().manual_seed(3))
    assert torch.equal(a, again), (
        "BEiT Algorithm 1: expected the same mask from the same generator seed: draw every random number "
        f"from the given torch generator (not Python's random); got {int((a != again).sum())} cells different")
    assert not torch.equal(a, gen(torch.Generator().manual_seed(4))), (
        "BEiT Algorithm 1: expected another mask from another generator seed: draw from the given generator; "
        "got the same mask")
    batch = gen.batch(2, torch.Generator().manual_seed(3))
    assert batch.shape == (2, 196) and torch.equal(batch[0], a.flatten()), (   # index = row * 14 + col
        "BEiT Algorithm 1: expected __call__ to return a (14, 14) grid that .batch flattens row-major to (2, "
        f"196), got a {tuple(a.shape)} mask and a {tuple(batch.shape)} batch")


def test_block_mask_eva_counts():
    g = torch.Generator().manual_seed(0)
    counts = [int(BlockMaskGenerator(16, 105)(g).sum()) for _ in range(800)]
    assert max(counts) <= 105 and abs(statistics.mean(counts) - 104.44) < 0.3, (    # reference §1.5: 104.44
        "EVA §2.2 / BEiT Algorithm 1: 105 of 16 x 16: expected at most 105 and a mean of 104.44 +- 0.3 "
        f"(BEiT's generator), got max {max(counts)}, mean {statistics.mean(counts):.2f}")


def test_block_mask_rejects_impossible_counts():
    with pytest.raises(ValueError, match="cannot mask"):
        BlockMaskGenerator(4, 17)


def test_grid_mask_keeps_one_in_four():
    m = grid_mask(14, 14)
    assert m.shape == (14, 14), f"MAE Table 1(f): expected a (Gh, Gw) = (14, 14) grid, got {tuple(m.shape)}"
    assert int((~m).sum()) == 49 and not m[0, 0] and m[0, 1] and m[1, 0] and m[1, 1] and not m[2, 2], (
        "MAE Table 1(f): expected 49 of 196 kept (False), the top-left of each 2 x 2 cell, got "
        f"{int((~m).sum())} kept; top-left 3 x 3 corner (True = masked): {m[:3, :3].tolist()}")


def test_cli_writes_png(tmp_path):
    out = tmp_path / "masks.png"
    masking.main(["--out", str(out), "--n", "2"])
    from PIL import Image
    assert Image.open(out).size[0] > 100

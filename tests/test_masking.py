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
        assert vis.shape == (2, keep, 4) and mask.dtype == torch.bool
        assert (mask.sum(1) == 196 - keep).all()
        for b in range(2):                                      # the visible tokens are the unmasked ones
            assert set(vis[b, :, 0].long().tolist()) == set(x[b, ~mask[b], 0].long().tolist())


def test_ids_restore_inverts_the_shuffle():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 64, 8)
    vis, mask, ids_restore = random_masking(x, 0.75, generator=g)
    # MAE decoder: append mask tokens, unshuffle with ids_restore -> visible tokens back in patch order
    full = torch.cat([vis, torch.zeros(3, 64 - vis.shape[1], 8)], dim=1)
    unshuffled = torch.gather(full, 1, ids_restore.unsqueeze(-1).expand(-1, -1, 8))
    torch.testing.assert_close(unshuffled[~mask], x[~mask])
    assert (unshuffled[mask] == 0).all()


def test_random_masking_same_seed_same_mask():
    x = torch.randn(4, 49, 3)
    a = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    b = random_masking(x, 0.75, torch.Generator().manual_seed(7))[1]
    c = random_masking(x, 0.75, torch.Generator().manual_seed(8))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_block_masks_never_exceed_n_and_mean_near_beit():
    g = torch.Generator().manual_seed(0)
    gen = BlockMaskGenerator(14, 75)                          # MaskDistill / BEiT: 75 of 14x14, min block 16
    counts = [int(gen(g).sum()) for _ in range(1500)]
    assert max(counts) <= 75
    # reference §1.5 (BEiT's own generator, 20k samples): mean 74.47, P(sum == 75) = 0.666
    assert abs(statistics.mean(counts) - 74.47) < 0.15
    assert abs(sum(c == 75 for c in counts) / len(counts) - 0.666) < 0.05


def test_block_masks_exact_variant_masks_exactly_n():
    g = torch.Generator().manual_seed(0)
    for grid, n in [(14, 75), (16, 105), (4, 6), (14, 0)]:
        gen = BlockMaskGenerator(grid, n, exact=True)
        for _ in range(50):
            m = gen(g)
            assert m.shape == (grid, grid) and m.dtype == torch.bool and int(m.sum()) == n


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
    assert placed and max(h for h, _ in placed) < 14 and max(w for _, w in placed) < 14


def test_block_mask_same_generator_seed_same_mask_and_row_major_batch():
    gen = BlockMaskGenerator(14, 75, exact=True)
    a = gen(torch.Generator().manual_seed(3))
    assert torch.equal(a, gen(torch.Generator().manual_seed(3)))
    assert not torch.equal(a, gen(torch.Generator().manual_seed(4)))
    batch = gen.batch(2, torch.Generator().manual_seed(3))
    assert batch.shape == (2, 196) and torch.equal(batch[0], a.flatten())   # index = row * 14 + col


def test_block_mask_eva_counts():
    g = torch.Generator().manual_seed(0)
    counts = [int(BlockMaskGenerator(16, 105)(g).sum()) for _ in range(800)]
    assert max(counts) <= 105 and abs(statistics.mean(counts) - 104.44) < 0.3      # reference §1.5: 104.44


def test_block_mask_rejects_impossible_counts():
    with pytest.raises(ValueError, match="cannot mask"):
        BlockMaskGenerator(4, 17)


def test_grid_mask_keeps_one_in_four():
    m = grid_mask(14, 14)
    assert int((~m).sum()) == 49 and not m[0, 0] and m[0, 1] and m[1, 0] and m[1, 1] and not m[2, 2]


def test_cli_writes_png(tmp_path):
    out = tmp_path / "masks.png"
    masking.main(["--out", str(out), "--n", "2"])
    from PIL import Image
    assert Image.open(out).size[0] > 100

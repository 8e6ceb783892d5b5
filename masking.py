"""The masking strategies of the papers, exactly.

- `random_masking`: MAE §3 "Masking" + "Simple implementation" (He et al., arXiv 2111.06377):
  shuffle the patch tokens by argsort of uniform noise, keep the first N_keep = int(N * (1 - ratio)),
  remember how to unshuffle. Used by mae.py (ratio 0.75).
- `BlockMaskGenerator`: BEiT §2.5 block-wise masking (Bao et al., arXiv 2106.08254), used by
  MaskDistill §3 ("roughly 40%, in a block-wise strategy": 75 of 14x14) and EVA §2.2 (105 of 16x16).
  Step by step as BEiT's masking_generator.py; `exact=True` adds BEiT v2's top-up to exactly N.
- `grid_mask`: MAE Table 1f's grid-wise sampling (keep one of every four patches), for completeness.

All masks are bool with True = masked (removed): random_masking gives (B, N) in patch order;
BlockMaskGenerator and grid_mask give a (Gh, Gw) grid (BlockMaskGenerator.batch flattens it
row-major to (B, Gh*Gw), the patch embedding's order). The random ones draw every number from an
optional torch.Generator (never Python's random, which BEiT's code uses): tests and resumed runs
are deterministic.

`python masking.py --out masks.png` draws a few random / block / grid masks side by side.
Shapes: B batch, N patches, D width, Gh x Gw patch grid.
"""
import argparse
import math

import torch


def random_masking(x, mask_ratio, generator=None):
    """MAE §3. x (B, N, D) -> (x_visible (B, N_keep, D), mask (B, N) bool True = removed,
    ids_restore (B, N)). Small noise is kept; the kept tokens come in noise order, as in MAE."""
    B, N, D = x.shape
    n_keep = int(N * (1 - mask_ratio))
    if generator is None:               # (torch.compile cannot trace an explicit generator argument)
        noise = torch.rand(B, N, device=x.device)                        # (B, N) uniform in [0, 1)
    else:
        noise = torch.rand(B, N, generator=generator, device=generator.device).to(x.device)
    ids_shuffle = torch.argsort(noise, dim=1)                             # ascending: small = keep
    ids_restore = torch.argsort(ids_shuffle, dim=1)                       # inverse permutation
    ids_keep = ids_shuffle[:, :n_keep]                                    # (B, N_keep)
    x_visible = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))   # (B, N_keep, D)
    mask = torch.ones(B, N, dtype=torch.bool, device=x.device)
    mask[:, :n_keep] = False                                              # in shuffled order...
    mask = torch.gather(mask, 1, ids_restore)                             # ...back to patch order
    return x_visible, mask, ids_restore


class BlockMaskGenerator:
    """BEiT block-wise masking (masking_generator.py): calling it gives a (Gh, Gw) bool mask.
    Repeat "place one block" while fewer than N are masked; stop when a placement fails. A block
    makes up to 10 attempts, each drawing an area s ~ U(min_num_patches, max_new) and an aspect
    r = exp(U(log min_aspect, log max_aspect)): h = round(sqrt(s r)), w = round(sqrt(s / r))
    (Python's round: halves to even); only if h < Gh and w < Gw (a block never spans a full row or
    column) a uniformly placed window, accepted iff it masks 0 < new <= max_new NEW cells. So the
    result never exceeds N (v1; EVA). `exact=True` then masks the shortfall uniformly among the
    unmasked cells (BEiT v2): exactly N."""

    def __init__(self, input_size, num_masking_patches, min_num_patches=16, max_num_patches=None,
                 min_aspect=0.3, max_aspect=None, exact=False):
        size = (input_size, input_size) if isinstance(input_size, int) else input_size
        self.height, self.width = size
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.exact = exact
        if num_masking_patches > self.height * self.width:
            raise ValueError(f"cannot mask {num_masking_patches} of {self.height}x{self.width} "
                             f"patches")

    def _uniform(self, lo, hi, g):
        return lo + (hi - lo) * torch.rand(1, generator=g).item()

    def _place_block(self, mask, max_new, g):
        """One block: up to 10 attempts; returns how many cells it newly masked (0 = failed)."""
        for _ in range(10):
            target_area = self._uniform(self.min_num_patches, max_new, g)
            aspect = math.exp(self._uniform(*self.log_aspect_ratio, g))
            h = int(round(math.sqrt(target_area * aspect)))
            w = int(round(math.sqrt(target_area / aspect)))
            if w < self.width and h < self.height:
                top = int(torch.randint(0, self.height - h + 1, (1,), generator=g))
                left = int(torch.randint(0, self.width - w + 1, (1,), generator=g))
                window = mask[top:top + h, left:left + w]
                new = h * w - int(window.sum())
                if 0 < new <= max_new:
                    window.fill_(True)
                    return new
        return 0

    def __call__(self, generator=None):
        mask = torch.zeros(self.height, self.width, dtype=torch.bool)           # (Gh, Gw)
        count = 0
        while count < self.num_masking_patches:
            max_new = min(self.num_masking_patches - count, self.max_num_patches)
            delta = self._place_block(mask, max_new, generator)
            if delta == 0:
                break
            count += delta
        if self.exact and count < self.num_masking_patches:                    # BEiT v2 top-up
            free = (~mask).flatten().nonzero().squeeze(1)                       # unmasked cells
            order = torch.randperm(len(free), generator=generator)
            pick = free[order[:self.num_masking_patches - count]]
            mask.view(-1)[pick] = True
        return mask

    def batch(self, batch_size, generator=None):
        """(B, Gh*Gw) bool, flattened row-major to match the patch order of vit.PatchEmbed."""
        return torch.stack([self(generator).flatten() for _ in range(batch_size)])


def grid_mask(grid_h, grid_w):
    """MAE Table 1f grid-wise sampling: keep one of every four patches (the top-left of each 2x2
    cell). -> (Gh, Gw) bool, True = masked (not flattened)."""
    i, j = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    return ~((i % 2 == 0) & (j % 2 == 0))                                  # (Gh, Gw) True = masked


def main(argv=None):
    p = argparse.ArgumentParser(description="Draw random (MAE), block (BEiT / MaskDistill / EVA) "
                                "and grid masks.")
    p.add_argument("--out", default="masks.png", help="output PNG")
    p.add_argument("--grid", type=int, default=14, help="patch grid side (14 = 224/16)")
    p.add_argument("--mask_ratio", type=float, default=0.75, help="random masking ratio (MAE: 0.75)")
    p.add_argument("--num_block", type=int, default=75, help="block count (MaskDistill: 75 of 196)")
    p.add_argument("--n", type=int, default=4, help="masks per row")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    from torchvision.utils import save_image
    g = torch.Generator().manual_seed(args.seed)
    G, n = args.grid, args.n
    rand = random_masking(torch.zeros(n, G * G, 1), args.mask_ratio, g)[1].view(n, G, G)
    block = BlockMaskGenerator(G, args.num_block, exact=True).batch(n, g).view(n, G, G)
    grid = grid_mask(G, G).expand(n, G, G)
    masks = torch.cat([rand, block, grid])                         # (3n, G, G), rows of n
    imgs = (~masks).float().unsqueeze(1)                           # white = visible
    imgs = imgs.repeat_interleave(12, 2).repeat_interleave(12, 3)
    save_image(imgs, args.out, nrow=n, padding=4, pad_value=0.5)
    print(f"wrote {args.out}: rows = random {args.mask_ratio:.0%} | block {args.num_block}/{G * G} "
          f"exact | grid 1-in-4")


if __name__ == "__main__":
    main()

"""One Vision Transformer that can be MAE's/timm's, OpenAI CLIP's, BEiT's (MaskDistill) and EVA's.

Dosovitskiy et al., "An Image is Worth 16x16 Words" (arXiv 2010.11929), §3.1 Eq. 1-4, with the switches
the four papers of this repo need, each a `ViTConfig` field that cites who needs it:
  MAE (He et al., arXiv 2111.06377) §3 / App. A.1  fixed 2-D sin-cos position embedding, mean-pool + fc_norm
  CLIP / FT-CLIP (Dong et al., arXiv 2212.06138)   pre-LayerNorm, QuickGELU, LN eps 1e-5, bias-free patch
                                                    conv, output projection `proj`; FT-CLIP §2.1 head
  MaskDistill (Peng et al., arXiv 2210.10615) §3-4 q/v bias, relative position bias (one shared table in
                                                    pre-training, one per block downstream: App. B), layer
                                                    scale, a mask token inside the encoder (Eq. 2)
  EVA (Fang et al., arXiv 2211.07636) Table 3a     the 1B "giant" shape (patch 14, 40 x 1408, MLP 6144)
Parameter names follow timm/MAE (`patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.{i}.attn.qkv`, ...)
so official MAE/timm weights load with strict=True and name-based layer-wise lr decay works;
`load_clip_state_dict` renames open_clip/OpenAI CLIP weights into them.

Run `python vit.py --model clip_b16 --img_size 224` for a params + GFLOPs report (multiply-adds, the
papers' convention; counted on the meta device, so ViT-g needs no memory). `python vit.py --all` lists all.

Shape legend: B batch, C channels, P patch size, N patches, D width, H heads, Dh = D / H head dim.
"""
import argparse
import math
import os
import warnings
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000            # 0 -> no head: forward() returns the pooled feature
    embed_dim: int = 768               # D
    depth: int = 12
    num_heads: int = 12                # H
    mlp_dim: int = 0                   # 0 -> 4 * D (ViT); EVA-g uses 6144 for D = 1408 (EVA Table 3a)
    norm_eps: float = 1e-6             # timm/MAE/BEiT 1e-6; OpenAI CLIP 1e-5
    act: str = "gelu"                  # "gelu" (erf) or "quick_gelu" x*sigmoid(1.702x) (OpenAI CLIP)
    qkv_bias: bool = True              # one bias on the fused qkv Linear (timm, MAE, CLIP)
    qv_bias: bool = False              # BEiT/MaskDistill: learnable q and v bias, k bias fixed at 0
    patch_bias: bool = True            # CLIP's conv1 has no bias
    pos_embed: str = "learned"         # "learned" | "sincos" (fixed 2-D, MAE §3) | "none"
    norm_pre: bool = False             # CLIP's ln_pre after adding positions
    rel_pos_bias: bool = False         # relative position bias (BEiT §2.6, MaskDistill §4.1)
    shared_rel_pos_bias: bool = True   # one table for all blocks (BEiT pre-training) or one per block (BEiT v2
                                       # fine-tuning; MaskDistill App. B "shared relative positional embeddings ✗")
    layer_scale: float = 0.0           # per-channel residual scale init (MaskDistill App. A: 0.1 B, 1e-5 L/H)
    mask_token: bool = False           # learnable [MASK] replacing masked patch embeddings (MaskDistill Eq. 2)
    global_pool: str = "token"         # "token" (cls) | "avg" (mean, then fc_norm; MAE) | "ln_avg" (LN, then mean; FT-CLIP)
    proj_dim: int = 0                  # CLIP's bias-free output projection (512 for B/16, 768 for L/14)
    drop_path: float = 0.0             # stochastic depth, linear over depth
    fused_attn: bool = True            # F.scaled_dot_product_attention vs the written-out softmax(QK^T/sqrt(Dh))V


# ----------------------------------------------------------------------------- building blocks

class PatchEmbed(nn.Module):
    """ViT Eq. 1: split into P x P patches and project each to D with one strided conv."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, bias=True):
        super().__init__()
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size, bias=bias)

    def forward(self, x):                                # (B, C, H, W)
        x = self.proj(x)                                 # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)              # (B, N, D), patches in row-major order


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation x * sigmoid(1.702 x); its weights need it (open_clip #771)."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention (ViT Eq. 2). `attn_bias` (H, N, N) is added to the logits (BEiT's shared RPE);
    with `rel_pos_grid` the block has its own table (BEiT v2 fine-tuning: blocks.{i}.attn.relative_position_bias_table)."""

    def __init__(self, dim, num_heads, qkv_bias=True, qv_bias=False, fused=True, rel_pos_grid=None):
        super().__init__()
        self.num_heads, self.head_dim, self.fused = num_heads, dim // num_heads, fused
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias and not qv_bias)
        # BEiT: q and v get a learnable bias, k none (a k bias cancels in the softmax anyway).
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qv_bias else None
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = None
        if rel_pos_grid is not None:                     # zero-init like the shared one; load_pretrained copies that in
            K = (2 * rel_pos_grid[0] - 1) * (2 * rel_pos_grid[1] - 1) + 3
            self.relative_position_bias_table = nn.Parameter(torch.zeros(K, num_heads))         # (K, H)
            self.register_buffer("relative_position_index", relative_position_index(rel_pos_grid), persistent=False)

    def forward(self, x, attn_bias=None):
        B, N, D = x.shape
        if self.relative_position_bias_table is not None:                          # BEiT: this block's own + any shared
            own = gather_rel_pos_bias(self.relative_position_bias_table, self.relative_position_index)   # (H, N, N)
            attn_bias = own if attn_bias is None else attn_bias + own
        bias = self.qkv.bias
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)                                   # (B, N, 3D)
        q, k, v = qkv.view(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)  # 3 x (B, H, N, Dh)
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype).unsqueeze(0)                          # (1, H, N, N)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)        # (B, H, N, Dh)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)                           # (B, H, N, N) = QK^T/sqrt(Dh)
            if attn_bias is not None:
                attn = attn + attn_bias
            x = attn.softmax(dim=-1) @ v                                            # (B, H, N, Dh)
        x = x.transpose(1, 2).reshape(B, N, D)                                      # concat heads
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden, act="gelu"):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = QuickGELU() if act == "quick_gelu" else nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x, p, training):
    """Stochastic depth (Huang et al. 2016): drop a sample's whole residual branch with prob p."""
    if p == 0.0 or not training:
        return x
    keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1 - p)
    return x * keep / (1 - p)


class Block(nn.Module):
    """Pre-norm Transformer block, ViT Eq. 2-3 (+ BEiT layer scale gamma):
    z' = z + DropPath(gamma_1 * MSA(LN(z)));  z'' = z' + DropPath(gamma_2 * MLP(LN(z')))."""

    def __init__(self, dim, num_heads, mlp_dim, cfg, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        grid = (cfg.img_size // cfg.patch_size,) * 2
        per_block_rpe = cfg.rel_pos_bias and not cfg.shared_rel_pos_bias
        self.attn = Attention(dim, num_heads, cfg.qkv_bias, cfg.qv_bias, cfg.fused_attn, grid if per_block_rpe else None)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, mlp_dim, cfg.act)
        ls = cfg.layer_scale
        self.gamma_1 = nn.Parameter(torch.full((dim,), ls)) if ls > 0 else None
        self.gamma_2 = nn.Parameter(torch.full((dim,), ls)) if ls > 0 else None
        self.drop_path = drop_path

    def forward(self, x, attn_bias=None):               # (B, N, D) -> (B, N, D)
        y = self.attn(self.norm1(x), attn_bias)
        x = x + drop_path(y if self.gamma_1 is None else self.gamma_1 * y, self.drop_path, self.training)
        y = self.mlp(self.norm2(x))
        return x + drop_path(y if self.gamma_2 is None else self.gamma_2 * y, self.drop_path, self.training)


def relative_position_index(grid_size):
    """BEiT §2.6: the (1+N, 1+N) table row of each (query, key) pair, cls first.
    Table rows: (2Gh-1)(2Gw-1) patch-to-patch offsets + 3 for cls->patch, patch->cls, cls->cls (732 for 14 x 14)."""
    Gh, Gw = grid_size
    K = (2 * Gh - 1) * (2 * Gw - 1) + 3
    coords = torch.stack(torch.meshgrid(torch.arange(Gh), torch.arange(Gw), indexing="ij")).flatten(1)  # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)             # (N, N, 2): (dr, dc)
    idx = (rel[..., 0] + Gh - 1) * (2 * Gw - 1) + (rel[..., 1] + Gw - 1)         # (N, N) in [0, K-3)
    index = torch.zeros(Gh * Gw + 1, Gh * Gw + 1, dtype=torch.long)
    index[1:, 1:] = idx
    index[0, :], index[:, 0], index[0, 0] = K - 3, K - 2, K - 1                  # cls rows/cols
    return index


def gather_rel_pos_bias(table, index):                                           # (K, H), (1+N, 1+N)
    return table[index].permute(2, 0, 1).contiguous()                            # (H, 1+N, 1+N)


class RelativePositionBias(nn.Module):
    """BEiT §2.6 / MaskDistill §4.1: one learnable bias per (relative offset, head), shared by all blocks
    (BEiT pre-training). Zero-initialised, as in BEiT."""

    def __init__(self, grid_size, num_heads):
        super().__init__()
        Gh, Gw = grid_size
        K = (2 * Gh - 1) * (2 * Gw - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(K, num_heads))   # (K, H)
        self.register_buffer("relative_position_index", relative_position_index(grid_size), persistent=False)  # (1+N, 1+N)

    def forward(self):
        return gather_rel_pos_bias(self.relative_position_bias_table, self.relative_position_index)  # (H, 1+N, 1+N)


def sincos_pos_embed_2d(embed_dim, grid_h, grid_w, cls_token=True):
    """MAE's fixed 2-D sin-cos embedding (util/pos_embed.py), in float64 like the original.
    First D/2 channels encode the column j, last D/2 the row i; each half is [sin(m w), cos(m w)]
    (concatenated, not interleaved) with w_k = 10000^(-k / (D/4)). A zero row is prepended for cls."""
    omega = 1.0 / 10000 ** (torch.arange(embed_dim // 4, dtype=torch.float64) / (embed_dim // 4))   # (D/4,)
    i, j = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64),
                          torch.arange(grid_w, dtype=torch.float64), indexing="ij")
    i, j = i.flatten()[:, None] * omega, j.flatten()[:, None] * omega                 # (N, D/4) each
    emb = torch.cat([j.sin(), j.cos(), i.sin(), i.cos()], dim=1)                      # (N, D)
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), emb])       # (1+N, D)
    return emb.float()


def resize_pos_embed(pos_embed, new_grid, num_prefix=1):
    """Resize (1, prefix+N, D) position embeddings to another patch grid, keeping the cls row:
    bicubic, align_corners=False, as MAE's interpolate_pos_embed and FT-CLIP do (224->384 fine-tuning,
    a CLIP-L/14 teacher fed 196 px in MaskDistill §4.1)."""
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    old = int(math.sqrt(grid.shape[1]))
    if (old, old) == tuple(new_grid):
        return pos_embed
    D = grid.shape[-1]
    grid = grid.reshape(1, old, old, D).permute(0, 3, 1, 2).float()                  # (1, D, g, g)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, D).to(pos_embed.dtype)            # (1, N', D)
    return torch.cat([prefix, grid], dim=1)


def cubic_spline_matrix(x, xq):
    """W (m, n), float64, with W @ y = the cubic spline through (x_i, y_i) evaluated at xq: C2, with not-a-knot ends
    (third derivative continuous at x_1 and x_{n-2}), i.e. the interpolating spline FITPACK fits with s=0 (SciPy's
    interp2d / RectBivariateSpline / make_interp_spline, k=3). Points outside [x_0, x_{n-1}] are clamped, as FITPACK's
    evaluator does. Written with the moments M_i = S''(x_i); x strictly increasing, n >= 4."""
    x, xq = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(xq, dtype=torch.float64)
    n = len(x)
    if n < 4:
        raise ValueError(f"a not-a-knot cubic spline needs at least 4 points, got {n}")
    h = x[1:] - x[:-1]                                                           # (n-1,) interval widths
    A, R = torch.zeros(n, n, dtype=torch.float64), torch.zeros(n, n, dtype=torch.float64)   # A M = R y
    for i in range(1, n - 1):        # S' continuous at x_i: h_{i-1} M_{i-1} + 2 (h_{i-1} + h_i) M_i + h_i M_{i+1}
        A[i, i - 1:i + 2] = torch.stack([h[i - 1], 2 * (h[i - 1] + h[i]), h[i]])    # = 6 (slope_i - slope_{i-1})
        R[i, i - 1:i + 2] = torch.stack([6 / h[i - 1], -6 / h[i - 1] - 6 / h[i], 6 / h[i]])
    A[0, :3] = torch.stack([h[1], -(h[0] + h[1]), h[0]])                        # not-a-knot: (M1-M0)/h0 = (M2-M1)/h1
    A[-1, -3:] = torch.stack([h[-1], -(h[-2] + h[-1]), h[-2]])                   # and the same at the other end
    M = torch.linalg.solve(A, R)                                                 # (n, n): moments = M @ y
    xq = xq.clamp(x[0], x[-1])
    i = (torch.searchsorted(x, xq, right=True) - 1).clamp(0, n - 2)              # interval of each query point
    hi, t0, t1 = h[i], x[i + 1] - xq, xq - x[i]
    rows = torch.arange(len(xq))
    Wy, WM = torch.zeros(len(xq), n, dtype=torch.float64), torch.zeros(len(xq), n, dtype=torch.float64)
    Wy[rows, i], Wy[rows, i + 1] = t0 / hi, t1 / hi                             # S = the chord in y ...
    WM[rows, i], WM[rows, i + 1] = t0 ** 3 / (6 * hi) - hi * t0 / 6, t1 ** 3 / (6 * hi) - hi * t1 / 6   # ... + moments
    return Wy + WM @ M


def resize_rel_pos_bias(table, new_grid, num_extra=3):
    """A (K, H) relative-position table of a G x G grid resized to new_grid (G' x G'), as BEiT v2's fine-tuning does
    (run_class_finetuning.py): per head, the (2G-1)^2 offsets are put on the coordinates 0, +-1, +-(1+q), +-(1+q+q^2),
    ... whose outermost is about G'-1 (q by bisection on [1.01, 1.5]), a bicubic spline through them is read at the
    integer offsets -(G'-1)..G'-1 (SciPy's interp2d(kind='cubic') there, `cubic_spline_matrix` on both axes here: the
    same tensor-product spline), and the 3 cls rows are appended back unchanged. Offsets 0 and +-1 keep their values."""
    src, dst = math.isqrt(table.shape[0] - num_extra), 2 * new_grid[0] - 1
    if new_grid[0] != new_grid[1] or src * src != table.shape[0] - num_extra:
        raise ValueError(f"relative position table {tuple(table.shape)}: only square grids are resized (as BEiT v2)")
    if src == dst:
        return table
    left, right = 1.01, 1.5                                                      # BEiT v2's bisection, as written there
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if (1.0 - q ** (src // 2)) / (1.0 - q) > dst // 2:                       # 1 + q + ... + q^(S/2 - 1) vs G' - 1
            right = q
        else:
            left = q
    dis, cur = [], 1.0
    for i in range(src // 2):                                                    # 1, 1+q, 1+q+q^2, ...
        dis.append(cur)
        cur += q ** (i + 1)
    x = [-d for d in reversed(dis)] + [0.0] + dis                               # (2G-1,) source coordinates
    W = cubic_spline_matrix(x, torch.arange(-(dst // 2), dst // 2 + 1))         # (2G'-1, 2G-1)
    H = table.shape[1]
    z = table[:-num_extra].double().t().reshape(H, src, src)                     # (H, dr, dc)
    z = (W @ z @ W.t()).reshape(H, dst * dst).t()                                # (K'-3, H): rows, then columns
    return torch.cat([z.to(table.dtype), table[-num_extra:]])                    # (K', H)


# ----------------------------------------------------------------------------- the model

class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D, bias=cfg.patch_bias)
        N = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        # MAE keeps the fixed sin-cos table as a frozen Parameter, so checkpoints carry it under the same name.
        self.pos_embed = None if cfg.pos_embed == "none" else nn.Parameter(
            torch.zeros(1, 1 + N, D), requires_grad=cfg.pos_embed == "learned")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.mask_token else None
        self.norm_pre = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.norm_pre else nn.Identity()
        shared = cfg.rel_pos_bias and cfg.shared_rel_pos_bias                          # else: one table in each block
        self.rel_pos_bias = RelativePositionBias(self.patch_embed.grid_size, cfg.num_heads) if shared else None
        dpr = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]     # linspace(0, drop_path, depth)
        self.blocks = nn.ModuleList(Block(D, cfg.num_heads, cfg.mlp_dim or 4 * D, cfg, dpr[i]) for i in range(cfg.depth))
        pooled = cfg.global_pool in ("avg", "ln_avg")
        # MAE (models_vit.py) and FT-CLIP both drop the final norm when pooling and add a fresh fc_norm.
        self.norm = nn.Identity() if pooled else nn.LayerNorm(D, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(D, eps=cfg.norm_eps) if pooled else nn.Identity()
        self.proj = nn.Linear(D, cfg.proj_dim, bias=False) if cfg.proj_dim else None   # CLIP: pooled @ proj
        self.num_features = cfg.proj_dim or D
        self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.init_weights()

    def init_weights(self):
        """timm-style init: trunc-normal(0.02) weights, zero biases; MAE re-inits its own way (mae.py)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.cls_token, std=0.02)
        if self.mask_token is not None:
            nn.init.trunc_normal_(self.mask_token, std=0.02)
        if self.cfg.pos_embed == "sincos":
            self.pos_embed.data.copy_(sincos_pos_embed_2d(self.cfg.embed_dim, *self.patch_embed.grid_size))
        elif self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def no_weight_decay(self):
        """Names exempt from weight decay besides 1-D params (timm/MAE convention)."""
        return {"pos_embed", "cls_token", "mask_token"}

    # The three steps below are the small interface mae.py uses to run the encoder on visible tokens only.
    def embed_patches(self, x, mask=None):
        """Patch tokens with position embeddings. `mask` (B, N) bool, True = masked: those patch embeddings
        are replaced by the shared mask token before positions are added (MaskDistill Eq. 2, BEiT)."""
        x = self.patch_embed(x)                                                       # (B, N, D)
        if mask is not None:
            w = mask.unsqueeze(-1).to(x.dtype)                                        # (B, N, 1)
            x = x * (1 - w) + self.mask_token.to(x.dtype) * w
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, 1:]
        return x

    def prepend_cls(self, x):                                                         # (B, n, D) -> (B, 1+n, D)
        cls = self.cls_token if self.pos_embed is None else self.cls_token + self.pos_embed[:, :1]
        return torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)

    def forward_blocks(self, x, final_norm=True):                                     # (B, 1+n, D) -> same
        """norm_pre, the blocks, and (unless final_norm=False: a CLIP teacher's "before ln_post" target) norm."""
        x = self.norm_pre(x)
        bias = self.rel_pos_bias() if self.rel_pos_bias is not None else None       # (H, 1+N, 1+N)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.norm(x) if final_norm else x

    def forward_features(self, x, mask=None):
        """(B, C, H, W) [+ mask (B, N) bool] -> all tokens after the final norm, (B, 1+N, D)."""
        return self.forward_blocks(self.prepend_cls(self.embed_patches(x, mask)))

    def pool_patches(self, x):                        # (B, 1+N, D) -> (B, D)
        """The pooled heads of MAE App. A.1 and FT-CLIP §2.1 (global_pool "avg" / "ln_avg")."""
        if self.cfg.global_pool == "avg":
            return self.fc_norm(x[:, 1:].mean(dim=1))     # MAE: mean over patches, then LN
        return self.fc_norm(x[:, 1:]).mean(dim=1)         # FT-CLIP: LN on each patch token, then mean

    def forward_head(self, x, pre_logits=False):
        # cls token (ViT, CLIP) or a pooled head; CLIP's tower ends in proj, a classifier in head
        x = x[:, 0] if self.cfg.global_pool == "token" else self.pool_patches(x)   # (B, D)
        if self.proj is not None:
            x = self.proj(x)                              # CLIP image embedding: pooled @ proj
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------- presets

PRESETS = {
    # timm / MAE ViTs (MAE App. A.1 sizes; H/14 is MAE's huge)
    "vit_tiny_patch16": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16": dict(embed_dim=1024, depth=24, num_heads=16),
    "vit_huge_patch14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
    # OpenAI CLIP vision towers (open_clip ViT-B-16-quickgelu / ViT-L-14-quickgelu)
    "clip_b16": dict(embed_dim=768, depth=12, num_heads=12, norm_eps=1e-5, act="quick_gelu", patch_bias=False,
                     norm_pre=True, proj_dim=512, num_classes=0),
    "clip_l14": dict(patch_size=14, embed_dim=1024, depth=24, num_heads=16, norm_eps=1e-5, act="quick_gelu",
                     patch_bias=False, norm_pre=True, proj_dim=768, num_classes=0),
    # EVA Table 3a: ViT-g, patch 14, 40 layers, width 1408, MLP 6144, 16 heads, 1011M params; BEiT-style q/v bias (EVA-01 code)
    "eva_g14": dict(patch_size=14, embed_dim=1408, depth=40, num_heads=16, mlp_dim=6144, qv_bias=True),
    # laptop-CPU sizes (32 px); `_mini` for demos, `_test` for the test suite
    # vit_mini: 128 wide x 4 deep (0.8 M params, head dim 32): ~3x cheaper per image on a CPU than 192 x 6, which the
    # laptop study's 3 seeds x 5 studies need (experiments/laptop.py)
    "vit_mini": dict(img_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=4, num_classes=10),
    "vit_test": dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10),
    "clip_test": dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, norm_eps=1e-5,
                      act="quick_gelu", patch_bias=False, norm_pre=True, proj_dim=32, num_classes=0),
}


def create_model(name, **overrides):
    """Build a preset ViT; keyword overrides replace any ViTConfig field (e.g. img_size=384)."""
    if name not in PRESETS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(PRESETS)}")
    valid = {f.name for f in fields(ViTConfig)}
    bad = sorted(set(overrides) - valid)
    if bad:
        raise ValueError(f"unknown ViTConfig field(s) {bad}; valid fields: {', '.join(sorted(valid))}")
    return ViT(ViTConfig(**{**PRESETS[name], **overrides}))


# ----------------------------------------------------------------------------- loading weights

def load_pretrained(model, state_dict, log=print):
    """Load an encoder saved by mae.py / maskdistill.py / timm / official MAE (vit.py names), adapting what
    fine-tuning legitimately changes and nothing else: position embeddings resized to the model's grid; relative
    position tables resized to it, and a shared one copied into every block when the model has one per block (BEiT v2
    run_class_finetuning.py; `log` says so); a head of another shape dropped (MAE main_finetune); final norm / CLIP
    proj / the pre-training mask token dropped when the model has none (MAE's and FT-CLIP's pooled heads; BEiT
    fine-tuning). A new head / fc_norm may be missing. Any other mismatch raises a ValueError naming the keys.
    Returns the dropped keys."""
    sd = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state_dict.items()
          if not k.endswith("relative_position_index")}                          # BEiT saves its index buffers
    own = model.state_dict()
    if "pos_embed" in sd and "pos_embed" in own and sd["pos_embed"].shape != own["pos_embed"].shape:
        sd["pos_embed"] = resize_pos_embed(sd["pos_embed"], model.patch_embed.grid_size)
    shared, per_block = "rel_pos_bias.relative_position_bias_table", "blocks.0.attn.relative_position_bias_table"
    expand = shared in sd and shared not in own and per_block in own
    grid = model.patch_embed.grid_size
    for k in [k for k in sd if k.endswith("relative_position_bias_table") and (k in own or expand)]:
        old = math.isqrt(sd[k].shape[0] - 3)
        if old != 2 * grid[0] - 1:
            sd[k] = resize_rel_pos_bias(sd[k], grid)
            if not k.startswith("blocks.") or k == per_block:                    # one line, not one per block
                log(f"[vit] relative position bias {old}x{old} -> {2 * grid[0] - 1}x{2 * grid[1] - 1} offsets "
                    f"(grid {grid[0]}x{grid[1]}; BEiT v2's bicubic interpolation on geometric coordinates)")
    if expand:                                                                   # BEiT v2 fine-tuning: one copy per block
        table = sd.pop(shared)
        sd.update({f"blocks.{i}.attn.relative_position_bias_table": table.clone() for i in range(len(model.blocks))})
        log(f"[vit] the shared relative position bias is copied into each of the {len(model.blocks)} blocks (BEiT v2)")
    elif shared in own and per_block in sd:
        raise ValueError("the checkpoint has one relative position table per block, this model one shared table: build "
                         "it with shared_rel_pos_bias=False (finetune.py: --no-shared_rel_pos_bias)")
    dropped = [k for k in sd if k.startswith(("head.", "proj.", "norm.", "mask_token")) and
               (k not in own or (k.startswith("head.") and sd[k].shape != own[k].shape))]
    for k in dropped:
        del sd[k]
    bad_shape = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items() if k in own and v.shape != own[k].shape}
    if bad_shape:
        raise ValueError(f"checkpoint does not fit this model (key: checkpoint shape vs model shape): {bad_shape}")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith(("head.", "fc_norm."))]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit this model: missing keys {missing}, unexpected keys {unexpected}")
    return dropped


def clip_to_vit_state_dict(state_dict):
    """Rename an open_clip / OpenAI CLIP (full-model or visual-only) state dict to vit.py names
    (reference §6): class_embedding -> cls_token, positional_embedding -> pos_embed, conv1 -> patch_embed.proj,
    ln_pre/ln_post -> norm_pre/norm, in_proj -> qkv (rows q|k|v), c_fc/c_proj -> fc1/fc2, proj -> proj.weight^T."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if any(k.startswith("visual.") for k in sd):                        # full CLIP: keep the image tower
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    rename = {"class_embedding": "cls_token", "positional_embedding": "pos_embed", "conv1.weight": "patch_embed.proj.weight",
              "ln_pre.weight": "norm_pre.weight", "ln_pre.bias": "norm_pre.bias",
              "ln_post.weight": "norm.weight", "ln_post.bias": "norm.bias", "proj": "proj.weight"}
    block = {"ln_1": "norm1", "ln_2": "norm2", "attn.in_proj_weight": "attn.qkv.weight",
             "attn.in_proj_bias": "attn.qkv.bias", "attn.out_proj": "attn.proj", "mlp.c_fc": "mlp.fc1",
             "mlp.c_proj": "mlp.fc2"}
    out = {}
    for k, v in sd.items():
        if k in rename:
            k = rename[k]
            if k == "cls_token":
                v = v.reshape(1, 1, -1)                  # (D,) -> (1, 1, D)
            elif k == "pos_embed":
                v = v.unsqueeze(0)                       # (1+N, D) -> (1, 1+N, D)
            elif k == "proj.weight":
                v = v.t()                                # x @ proj == Linear with weight proj^T: (D, E) -> (E, D)
        elif k.startswith("transformer.resblocks."):
            i, rest = k[len("transformer.resblocks."):].split(".", 1)
            for a, b in block.items():
                if rest.startswith(a):
                    rest = b + rest[len(a):]
                    break
            k = f"blocks.{i}.{rest}"
        out[k] = v
    return out


def load_clip_state_dict(model, state_dict):
    """Load open_clip / OpenAI CLIP image-tower weights into a clip_* ViT (any resolution: positions are
    resized). A model without `norm`/`proj` (FT-CLIP's pooled head) drops ln_post/proj, as FT-CLIP does.
    Returns the list of dropped keys; raises ValueError naming missing/unexpected keys on a mismatch."""
    return load_pretrained(model, clip_to_vit_state_dict(state_dict))


# open_clip configs of the OpenAI CLIP towers (QuickGELU: open_clip #771); clip_test is registered by tests/conftest.py
OPEN_CLIP_NAMES = {"clip_b16": "ViT-B-16-quickgelu", "clip_l14": "ViT-L-14-quickgelu", "clip_test": "mimlab-tiny-clip"}


def read_clip_weights(arch, pretrained, flag="--pretrained"):
    """OpenAI-CLIP weights as a state dict, from a local file (a state dict, {"state_dict": ...}, .safetensors, or
    OpenAI's TorchScript .pt) or an open_clip tag such as 'openai' (downloaded once into the Hugging Face cache).
    Anything else is a one-line SystemExit naming `flag` (the script's option) and what to do."""
    if os.path.isfile(pretrained):
        try:
            if pretrained.endswith(".safetensors"):
                from safetensors.torch import load_file        # comes with open_clip (via timm / huggingface_hub)
                sd = load_file(pretrained)
            else:
                with warnings.catch_warnings():                 # torch hands OpenAI's TorchScript .pt to jit.load
                    warnings.filterwarnings("ignore", message=".*TorchScript archive.*")
                    sd = torch.load(pretrained, map_location="cpu", weights_only=True)
        except Exception:                                       # noqa: BLE001 - TorchScript refuses weights_only
            try:
                sd = torch.jit.load(pretrained, map_location="cpu")
            except Exception as e:                              # noqa: BLE001
                raise SystemExit(f"{flag} {pretrained}: neither a state dict nor a TorchScript archive "
                                 f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
        sd = sd.state_dict() if isinstance(sd, nn.Module) else sd      # OpenAI's ScriptModule -> its tensors
        return sd.get("state_dict", sd)
    if os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise SystemExit(f"{flag} {pretrained}: no such file")
    if arch not in OPEN_CLIP_NAMES:
        raise SystemExit(f"{flag} {pretrained}: {arch} has no open_clip name ({', '.join(OPEN_CLIP_NAMES)} do); "
                         f"pass a state-dict file")
    import open_clip                                            # lazy: only a tag needs it
    try:
        return open_clip.create_model(OPEN_CLIP_NAMES[arch], pretrained=pretrained).state_dict()
    except Exception as e:                                      # noqa: BLE001 - offline, unknown tag, ...
        raise SystemExit(f"{flag} {pretrained}: could not get {OPEN_CLIP_NAMES[arch]} weights via open_clip "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}). Offline "
                         f"(HF_HUB_OFFLINE=1) or no network? A local file works: {flag} /path/to/ViT-B-16.pt") from None


# ----------------------------------------------------------------------------- params / FLOPs report

def count_params_and_flops(name, img_size=None, **overrides):
    """(params, GFLOPs as multiply-adds) for one image, counted on the meta device (no memory, and unlike
    the CPU fused kernel, SDPA is counted there). FlopCounterMode reports 2 x MACs; papers quote MACs."""
    from torch.utils.flop_counter import FlopCounterMode
    kw = dict(overrides, **({"img_size": img_size} if img_size else {}))
    with torch.device("meta"):
        model = create_model(name, **kw)
        x = torch.empty(1, model.cfg.in_chans, model.cfg.img_size, model.cfg.img_size)
    params = sum(p.numel() for p in model.parameters())
    with FlopCounterMode(display=False) as counter:
        model(x)
    return params, counter.get_total_flops() / 2 / 1e9


def main(argv=None):
    p = argparse.ArgumentParser(description="Parameters and GFLOPs (multiply-adds) of a vit.py preset.")
    p.add_argument("--model", default="clip_b16", help=f"one of: {', '.join(PRESETS)}")
    p.add_argument("--img_size", type=int, default=None, help="input resolution (default: the preset's)")
    p.add_argument("--all", action="store_true", help="report every preset at its default resolution")
    args = p.parse_args(argv)
    for name in (PRESETS if args.all else [args.model]):
        if name not in PRESETS:
            p.error(f"unknown model '{name}'; choose one of: {', '.join(PRESETS)}")
        params, gflops = count_params_and_flops(name, args.img_size)
        size = args.img_size or PRESETS[name].get("img_size", 224)
        print(f"{name:20s} img {size:4d}  params {params / 1e6:9.2f} M  GFLOPs (MACs) {gflops:8.2f}")


if __name__ == "__main__":
    main()

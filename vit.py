"""One Vision Transformer that can be MAE's / timm's, OpenAI CLIP's, BEiT's (MaskDistill) and EVA's.

Dosovitskiy et al., "An Image is Worth 16x16 Words" (arXiv 2010.11929), §3.1 Eq. 1-4, with the
switches the four papers of this repo need, each a `ViTConfig` field that says who needs it:
  MAE (He et al., arXiv 2111.06377) §3, App. A.1   fixed 2-D sin-cos positions; mean-pool + fc_norm
  CLIP / FT-CLIP (Dong et al., arXiv 2212.06138)   pre-LayerNorm, QuickGELU, LN eps 1e-5, bias-free
                                                   patch conv, output projection `proj`; §2.1 head
  MaskDistill (Peng et al., arXiv 2210.10615)      q/v bias, relative position bias (one shared
    §3-4, App. A-B                                 table in pre-training, one per block downstream),
                                                   layer scale, a mask token in the encoder (Eq. 2)
  EVA (Fang et al., arXiv 2211.07636) Table 3a     the 1B "giant" shape (patch 14, 40 x 1408)
Parameter names follow timm / MAE (`patch_embed.proj`, `cls_token`, `pos_embed`,
`blocks.{i}.attn.qkv`, ...), so official MAE / timm weights load with strict=True and name-based
layer-wise lr decay works; weights.py reads other codebases' weights (CLIP, BEiT) into them.

Run `python vit.py --model clip_b16 --img_size 224` for a params + GFLOPs report (multiply-adds,
the papers' convention; counted on the meta device, so ViT-g needs no memory); `--all` lists all.

Shape legend: B batch, C channels, P patch size, N patches, D width, H heads, Dh = D / H head dim.
"""
import argparse
from dataclasses import dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ViTConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000       # 0 -> no head: forward() returns the pooled feature
    embed_dim: int = 768          # D
    depth: int = 12
    num_heads: int = 12           # H
    mlp_dim: int = 0              # 0 -> 4 * D (ViT); EVA-g: 6144 for D = 1408 (Table 3a)
    norm_eps: float = 1e-6        # timm / MAE / BEiT 1e-6; OpenAI CLIP 1e-5
    act: str = "gelu"             # "gelu" (erf) or "quick_gelu" x * sigmoid(1.702 x) (CLIP)
    qkv_bias: bool = True         # one bias on the fused qkv Linear (timm, MAE, CLIP)
    qv_bias: bool = False         # BEiT / MaskDistill: learnable q and v bias, k bias 0
    patch_bias: bool = True       # CLIP's conv1 has no bias
    pos_embed: str = "learned"    # "learned" | "sincos" (fixed 2-D, MAE §3) | "none"
    norm_pre: bool = False        # CLIP's ln_pre after adding positions
    rel_pos_bias: bool = False    # relative position bias (BEiT §2.6, MaskDistill §4.1)
    # one table for all blocks (BEiT pre-training), or one per block (BEiT v2 fine-tuning;
    # MaskDistill App. B: "shared relative positional embeddings ✗")
    shared_rel_pos_bias: bool = True
    layer_scale: float = 0.0      # residual scale init per channel (App. A: 0.1 B, 1e-5 L/H)
    mask_token: bool = False      # a learnable [MASK] replacing masked patches (Eq. 2)
    global_pool: str = "token"    # "token" (cls) | "avg" (MAE) | "ln_avg" (FT-CLIP)
    proj_dim: int = 0             # CLIP's bias-free output projection (512 B/16, 768 L/14)
    drop_path: float = 0.0        # stochastic depth, linear over depth
    fused_attn: bool = True       # F.scaled_dot_product_attention, else written out


# ----------------------------------------------------------------------------- building blocks

class PatchEmbed(nn.Module):
    """ViT Eq. 1: split into P x P patches and project each to D with one strided conv."""

    def __init__(self, img_size, patch_size, in_chans, embed_dim, bias=True):
        super().__init__()
        self.patch_size = patch_size
        self.grid_size = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size,
                              bias=bias)

    def forward(self, x):                        # (B, C, H, W)
        x = self.proj(x)                         # (B, D, H/P, W/P)
        return x.flatten(2).transpose(1, 2)      # (B, N, D), patches in row-major order


class QuickGELU(nn.Module):
    """OpenAI CLIP's activation x * sigmoid(1.702 x); its weights need it (open_clip #771)."""

    def forward(self, x):
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention (ViT Eq. 2). `attn_bias` (H, N, N) is added to the logits (BEiT's
    shared RPE); with `rel_pos_grid` the block has its own table (BEiT v2 fine-tuning)."""

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
        if rel_pos_grid is not None:        # zero-init like the shared one (weights.py copies that in)
            K = (2 * rel_pos_grid[0] - 1) * (2 * rel_pos_grid[1] - 1) + 3
            self.relative_position_bias_table = nn.Parameter(torch.zeros(K, num_heads))  # (K, H)
            index = relative_position_index(rel_pos_grid)
            self.register_buffer("relative_position_index", index, persistent=False)

    def forward(self, x, attn_bias=None):
        B, N, D = x.shape
        if self.relative_position_bias_table is not None:   # BEiT: this block's own + any shared
            own = gather_rel_pos_bias(self.relative_position_bias_table,
                                      self.relative_position_index)                # (H, N, N)
            attn_bias = own if attn_bias is None else attn_bias + own
        bias = self.qkv.bias
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)                                   # (B, N, 3D)
        qkv = qkv.view(B, N, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)                                       # 3 x (B, H, N, Dh)
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype).unsqueeze(0)                          # (1, H, N, N)
        if self.fused:
            x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias)        # (B, H, N, Dh)
        else:
            attn = (q * self.scale) @ k.transpose(-2, -1)      # (B, H, N, N) = QK^T / sqrt(Dh)
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
        per_block_rpe = cfg.rel_pos_bias and not cfg.shared_rel_pos_bias
        grid = (cfg.img_size // cfg.patch_size,) * 2 if per_block_rpe else None
        self.attn = Attention(dim, num_heads, cfg.qkv_bias, cfg.qv_bias, cfg.fused_attn, grid)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.norm_eps)
        self.mlp = Mlp(dim, mlp_dim, cfg.act)
        ls = cfg.layer_scale
        self.gamma_1 = nn.Parameter(torch.full((dim,), ls)) if ls > 0 else None
        self.gamma_2 = nn.Parameter(torch.full((dim,), ls)) if ls > 0 else None
        self.drop_path = drop_path

    def forward(self, x, attn_bias=None):               # (B, N, D) -> (B, N, D)
        y = self.attn(self.norm1(x), attn_bias)
        y = y if self.gamma_1 is None else self.gamma_1 * y
        x = x + drop_path(y, self.drop_path, self.training)
        y = self.mlp(self.norm2(x))
        y = y if self.gamma_2 is None else self.gamma_2 * y
        return x + drop_path(y, self.drop_path, self.training)


def relative_position_index(grid_size):
    """BEiT §2.6: the (1+N, 1+N) table row of each (query, key) pair, cls first. Table rows:
    (2Gh-1)(2Gw-1) patch-to-patch offsets + 3 for cls->patch, patch->cls, cls->cls (732 at 14 x 14)."""
    Gh, Gw = grid_size
    K = (2 * Gh - 1) * (2 * Gw - 1) + 3
    rows, cols = torch.meshgrid(torch.arange(Gh), torch.arange(Gw), indexing="ij")
    coords = torch.stack([rows, cols]).flatten(1)                               # (2, N)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0)           # (N, N, 2): (dr, dc)
    idx = (rel[..., 0] + Gh - 1) * (2 * Gw - 1) + (rel[..., 1] + Gw - 1)        # (N, N) in [0, K-3)
    index = torch.zeros(Gh * Gw + 1, Gh * Gw + 1, dtype=torch.long)
    index[1:, 1:] = idx
    index[0, :], index[:, 0], index[0, 0] = K - 3, K - 2, K - 1                  # cls rows / cols
    return index


def gather_rel_pos_bias(table, index):                   # (K, H), (1+N, 1+N)
    return table[index].permute(2, 0, 1).contiguous()    # (H, 1+N, 1+N)


class RelativePositionBias(nn.Module):
    """BEiT §2.6 / MaskDistill §4.1: one learnable bias per (relative offset, head), shared by all
    blocks (BEiT pre-training). Zero-initialised, as in BEiT."""

    def __init__(self, grid_size, num_heads):
        super().__init__()
        Gh, Gw = grid_size
        K = (2 * Gh - 1) * (2 * Gw - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(K, num_heads))  # (K, H)
        index = relative_position_index(grid_size)                                 # (1+N, 1+N)
        self.register_buffer("relative_position_index", index, persistent=False)

    def forward(self):                                                              # (H, 1+N, 1+N)
        return gather_rel_pos_bias(self.relative_position_bias_table, self.relative_position_index)


def sincos_pos_embed_2d(embed_dim, grid_h, grid_w, cls_token=True):
    """MAE's fixed 2-D sin-cos embedding (util/pos_embed.py), computed in float64 like the original,
    returned as float32: (1 + N, D), or (N, D) without cls.
    First D/2 channels encode the column j, last D/2 the row i; each half is [sin(m w), cos(m w)]
    (concatenated, not interleaved) with w_k = 10000^(-k / (D/4)). A zero row is prepended for cls."""
    quarter = embed_dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)   # (D/4,)
    i, j = torch.meshgrid(torch.arange(grid_h, dtype=torch.float64),
                          torch.arange(grid_w, dtype=torch.float64), indexing="ij")
    i, j = i.flatten()[:, None] * omega, j.flatten()[:, None] * omega              # (N, D/4) each
    emb = torch.cat([j.sin(), j.cos(), i.sin(), i.cos()], dim=1)                    # (N, D)
    if cls_token:
        emb = torch.cat([torch.zeros(1, embed_dim, dtype=torch.float64), emb])     # (1+N, D)
    return emb.float()


# ----------------------------------------------------------------------------- the model

class ViT(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.cfg = cfg
        D = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg.img_size, cfg.patch_size, cfg.in_chans, D, cfg.patch_bias)
        N = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        # MAE keeps its fixed sin-cos table as a frozen Parameter: checkpoints carry it by name.
        self.pos_embed = None if cfg.pos_embed == "none" else nn.Parameter(
            torch.zeros(1, 1 + N, D), requires_grad=cfg.pos_embed == "learned")
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D)) if cfg.mask_token else None
        self.norm_pre = nn.LayerNorm(D, eps=cfg.norm_eps) if cfg.norm_pre else nn.Identity()
        shared = cfg.rel_pos_bias and cfg.shared_rel_pos_bias      # else: one table in each block
        grid = self.patch_embed.grid_size
        self.rel_pos_bias = RelativePositionBias(grid, cfg.num_heads) if shared else None
        dpr = [cfg.drop_path * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # 0 .. drop_path
        self.blocks = nn.ModuleList(Block(D, cfg.num_heads, cfg.mlp_dim or 4 * D, cfg, dpr[i])
                                    for i in range(cfg.depth))
        pooled = cfg.global_pool in ("avg", "ln_avg")
        # MAE (models_vit.py) and FT-CLIP both drop the final norm when pooling, add a fresh fc_norm.
        self.norm = nn.Identity() if pooled else nn.LayerNorm(D, eps=cfg.norm_eps)
        self.fc_norm = nn.LayerNorm(D, eps=cfg.norm_eps) if pooled else nn.Identity()
        self.proj = nn.Linear(D, cfg.proj_dim, bias=False) if cfg.proj_dim else None   # CLIP
        self.num_features = cfg.proj_dim or D
        self.head = nn.Linear(self.num_features, cfg.num_classes) if cfg.num_classes else nn.Identity()
        self.init_weights()

    def init_weights(self):
        """timm-style: trunc-normal(0.02) weights, zero biases; MAE re-inits its own way (mae.py)."""
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
            table = sincos_pos_embed_2d(self.cfg.embed_dim, *self.patch_embed.grid_size)
            self.pos_embed.data.copy_(table)
        elif self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def no_weight_decay(self):
        """Names exempt from weight decay besides 1-D params and biases (timm / MAE fine-tuning; a
        mask token is decayed in pre-training: maskdistill.MaskDistill.no_weight_decay)."""
        return {"pos_embed", "cls_token", "mask_token"}

    # The three steps below are the small interface mae.py uses to encode visible tokens only.
    def embed_patches(self, x, mask=None):
        """Patch tokens with positions. `mask` (B, N) bool, True = masked: those patch embeddings
        become the shared mask token before positions are added (MaskDistill Eq. 2, BEiT)."""
        x = self.patch_embed(x)                                     # (B, N, D)
        if mask is not None:
            w = mask.unsqueeze(-1).to(x.dtype)                      # (B, N, 1)
            x = x * (1 - w) + self.mask_token.to(x.dtype) * w
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, 1:]
        return x

    def prepend_cls(self, x):                                       # (B, n, D) -> (B, 1+n, D)
        cls = self.cls_token if self.pos_embed is None else self.cls_token + self.pos_embed[:, :1]
        return torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)

    def forward_blocks(self, x, final_norm=True):                   # (B, 1+n, D) -> same
        """norm_pre, the blocks, and the final norm (not with final_norm=False: a CLIP teacher's
        "before ln_post" target)."""
        x = self.norm_pre(x)
        bias = self.rel_pos_bias() if self.rel_pos_bias is not None else None   # (H, 1+N, 1+N)
        for blk in self.blocks:
            x = blk(x, bias)
        return self.norm(x) if final_norm else x

    def forward_features(self, x, mask=None):
        """(B, C, H, W) [+ mask (B, N) bool] -> all tokens after the final norm, (B, 1+N, D)."""
        return self.forward_blocks(self.prepend_cls(self.embed_patches(x, mask)))

    def pool_patches(self, x):                                      # (B, 1+N, D) -> (B, D)
        """The pooled heads of MAE App. A.1 and FT-CLIP §2.1 (global_pool "avg" / "ln_avg")."""
        if self.cfg.global_pool == "avg":
            return self.fc_norm(x[:, 1:].mean(dim=1))       # MAE: mean over patches, then LN
        return self.fc_norm(x[:, 1:]).mean(dim=1)           # FT-CLIP's code: LN each patch, mean

    def forward_head(self, x, pre_logits=False):
        # the cls token (ViT, CLIP) or a pooled head; CLIP's tower ends in proj, a classifier in head
        x = x[:, 0] if self.cfg.global_pool == "token" else self.pool_patches(x)     # (B, D)
        if self.proj is not None:
            x = self.proj(x)                                # CLIP image embedding: pooled @ proj
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


# ----------------------------------------------------------------------------- presets

CLIP = dict(norm_eps=1e-5, act="quick_gelu", patch_bias=False, norm_pre=True, num_classes=0)
PRESETS = {
    # timm / MAE ViTs (MAE App. A.1 sizes; H/14 is MAE's huge)
    "vit_tiny_patch16": dict(embed_dim=192, depth=12, num_heads=3),
    "vit_small_patch16": dict(embed_dim=384, depth=12, num_heads=6),
    "vit_base_patch16": dict(embed_dim=768, depth=12, num_heads=12),
    "vit_large_patch16": dict(embed_dim=1024, depth=24, num_heads=16),
    "vit_huge_patch14": dict(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
    # OpenAI CLIP image towers (open_clip ViT-B-16-quickgelu / ViT-L-14-quickgelu)
    "clip_b16": dict(CLIP, embed_dim=768, depth=12, num_heads=12, proj_dim=512),
    "clip_l14": dict(CLIP, patch_size=14, embed_dim=1024, depth=24, num_heads=16, proj_dim=768),
    # EVA Table 3a: ViT-g, patch 14, 40 layers, width 1408, MLP 6144, 16 heads, 1011 M params;
    # BEiT-style q/v bias (EVA-01 code)
    "eva_g14": dict(patch_size=14, embed_dim=1408, depth=40, num_heads=16, mlp_dim=6144, qv_bias=True),
    # laptop-CPU sizes (32 px): `_mini` for demos and the laptop study, `_test` for the test suite.
    # vit_mini is 128 wide x 4 deep (0.8 M params, head dim 32): ~3x cheaper per image on a CPU
    # than 192 x 6, which the laptop study's 3 seeds x 5 studies need (experiments/laptop.py).
    "vit_mini": dict(img_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=4, num_classes=10),
    "vit_test": dict(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, num_classes=10),
    "clip_test": dict(CLIP, img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2, proj_dim=32),
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


# ----------------------------------------------------------------------------- params / FLOPs report

def count_params_and_flops(name, img_size=None, **overrides):
    """(params, GFLOPs as multiply-adds) for one image, counted on the meta device (no memory, and
    unlike the CPU fused kernel, SDPA is counted there). FlopCounterMode counts 2 x MACs; the papers
    quote MACs."""
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

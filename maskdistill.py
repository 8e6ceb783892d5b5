"""A Unified View of Masked Image Modeling (Peng et al., TMLR 2023, arXiv 2210.10615): MaskDistill,
and EVA's MIM objective (Fang et al., CVPR 2023, arXiv 2211.07636, §2.2) as flags of the same code.

The paper's Eq. 1 writes every MIM method as five swappable parts; this file has one per part:
    loss = L( H(S(x_masked)) , N(T(x)) )       at the masked positions M        (Eq. 1 / Eq. 3)
  T  teacher        `Teacher`           frozen CLIP image tower (or a saved vit.py encoder)
  N  normalization  `normalize_target`  LayerNorm without affine (Eq. 3), `--target_norm`
  S  student        `build_student`     BEiT-style ViT, mask token inside the encoder (Eq. 2)
  H  MIM head       `MaskDistill.head`  one Linear(D -> Dt) on the student's final-norm tokens
  L  loss           `mim_loss`          Smooth-l1 / MSE / negative cosine on masked tokens, `--loss`
  M  mask           `MaskCollate`       BEiT block-wise masking, ~40% (masking.BlockMaskGenerator)

Table 1 and Table 8 as flags (defaults: "MaskDistill (Ours)", CLIP | ViT | FC | LN | Smooth-l1):
  Table 8, CLIP + MSE, no norm           --loss mse --target_norm none
  Table 8, CLIP + cosine (l2)            --loss cosine --target_norm none
  Table 8, CLIP + Smooth-l1 + BN         --target_norm bn
  Table 8, last layer (default)          --target proj  (the mean of the last 3 / 6 layers: not here)
  Table 5 / §4.3, distillation           --mask_ratio 0  (no mask: the loss on ALL tokens)
  Table 6, other teachers (MAE, #9)      --teacher runs/mae_mae_vit_base_patch16/encoder.pt
  EVA §2.2 objective                     --loss cosine --target proj --target_norm none (eva_g14)

Run (CPU, built-in data, 1.2 min on 2 cores; the teacher is the MAE quick start's encoder):
    python mae.py --model mae_vit_mini --data atoms
    python maskdistill.py --model maskdistill_vit_mini --data atoms
Real run (App. A: batch 2048 = 16 GPUs x 128; on 8 GPUs add --accum_iter 2; CLIP downloads once):
    torchrun --nproc_per_node=8 maskdistill.py --model maskdistill_vit_base_patch16 \\
        --teacher clip_b16 --data /path/to/imagenet
The student lands in <output_dir>/encoder.pt: fine-tune it with `finetune.py --init <that file>`.

Shapes: B batch, C channels, N = Gh*Gw patches, M masked tokens in the batch, D student width,
D_T teacher width, Dt target width (CLIP's proj_dim; D_T with --target raw / ln), P patch size.
"""
import argparse
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
from data import MEAN_STD, build_transform, dataset_from_args
from masking import BlockMaskGenerator
from vit import PRESETS as VIT_PRESETS
from vit import ViT, ViTConfig
from weights import teacher_vit


def normalize_image(x, mean_std):
    """(B, C, H, W) in [0, 1] -> (x - mean) / std with the named constants (data.MEAN_STD)."""
    mean, std = MEAN_STD[mean_std]
    mean = torch.tensor(mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


# ----------------------------------------------------------------------------- T: the teacher

class Teacher(nn.Module):
    """T in Eq. 1: a frozen vit.py encoder whose last-layer patch tokens are the target (no cls).
    `target` (the paper does not say which tensor; NOTE(paper): proj, as its lineage's code):
      proj  ln_post(tokens) @ proj: CLIP's image-text space (B, N, proj_dim), BEiT v2 / EVA-01
      ln    ln_post(tokens), open_clip's `output_tokens` (B, N, D_T); a teacher without proj
      raw   the last block's output, before ln_post (B, N, D_T)
    Input: the student's crop in [0, 1], resized to the teacher's resolution (its grid x patch:
    196 px for CLIP-L/14 under a /16 student at 224, §4.1), normalized with the teacher's mean/std.
    NOTE(paper): BEiT v2 resizes the original crop twice (224, 196); this resizes the crop once."""

    def __init__(self, vit, mean_std, target="proj"):
        super().__init__()
        if target == "proj" and vit.proj is None:
            target = "ln"                               # no projection: its final-norm tokens
        self.vit, self.mean_std, self.target = vit, mean_std, target
        self.img_size = vit.cfg.img_size
        self.out_dim = vit.cfg.proj_dim if target == "proj" else vit.cfg.embed_dim      # Dt
        self.requires_grad_(False)
        self.eval()

    def train(self, mode=True):
        return super().train(False)                     # always eval: no drop path, whatever the caller

    @torch.no_grad()
    def forward(self, imgs):                            # (B, C, H, W) in [0, 1], the student's size
        x = imgs
        if x.shape[-1] != self.img_size:                # §4.1: match the token grids
            x = F.interpolate(x, size=(self.img_size, self.img_size), mode="bicubic",
                              align_corners=False, antialias=True).clamp(0, 1)   # (B, C, Ht, Wt)
        x = normalize_image(x, self.mean_std)
        x = self.vit.prepend_cls(self.vit.embed_patches(x))
        h = self.vit.forward_blocks(x, final_norm=False)                        # (B, 1+N, D_T)
        h = h[:, 1:]                                    # (B, N, D_T): patch tokens only
        if self.target in ("ln", "proj"):
            h = self.vit.norm(h)                        # ln_post (per token: cls or not is the same)
        if self.target == "proj":
            h = self.vit.proj(h)                        # (B, N, proj_dim): tokens @ proj (EVA §2.2)
        return h


def build_teacher(teacher, pretrained, grid, target="proj", mean_std="auto", pos_resize="beit2"):
    """T for a student patch grid (Gh, Gw): a CLIP preset name (weights `pretrained`) or the path
    of an encoder.pt; mean_std "auto": what it was trained with (weights.teacher_vit loads it)."""
    vit, trained_with = teacher_vit(teacher, pretrained, grid, pos_resize)
    return Teacher(vit, trained_with if mean_std == "auto" else mean_std, target)


# ----------------------------------------------------------------------------- N: target normalization

def normalize_target(t, kind="ln", eps=1e-6):
    """N in Eq. 1: (B, N, Dt) -> (B, N, Dt) in fp32."""
    t = t.float()
    if kind == "ln":        # Eq. 3: LayerNorm WITHOUT affine over each token's channels (biased var)
        return F.layer_norm(t, t.shape[-1:], eps=eps)
    if kind == "bn":        # Table 8 "BN": per channel over this process' tokens. NOTE(paper): no sync
        return (t - t.mean((0, 1))) / torch.sqrt(t.var((0, 1), unbiased=False) + eps)
    return t                # "none": Table 8's MSE / cosine rows; EVA §2.2 (only CLIP's own ln_post)


# ----------------------------------------------------------------------------- S: the student, and H

def beit_init_(vit, std=0.02):
    """BEiT v2 modeling_pretrain.py's init: trunc-normal(std) cut at +-std for Linear / conv weights,
    tokens and positions; zero biases; LN 1 / 0; then block l (1-based) has its attn.proj and
    mlp.fc2 weights divided by sqrt(2 l) (`fix_init_weight`: a flat residual-stream variance)."""
    def tn(t):
        nn.init.trunc_normal_(t, std=std, a=-std, b=std)
    for m in vit.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            tn(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for t in (vit.cls_token, vit.mask_token, vit.pos_embed):
        if t is not None:
            tn(t)
    with torch.no_grad():
        for layer, blk in enumerate(vit.blocks, start=1):
            blk.attn.proj.weight.div_(math.sqrt(2.0 * layer))
            blk.mlp.fc2.weight.div_(math.sqrt(2.0 * layer))
    return vit


def build_student(name, img_size=None, *, rel_pos_bias=True, abs_pos_emb=True, qv_bias=True,
                  layer_scale=0.1, drop_path=0.1, init_std=0.02, **overrides):
    """S in Eq. 1: vit.py preset `name` with a mask token inside the encoder (Eq. 2) and §4.1's BEiT
    bits (one shared relative position bias, q/v bias, layer scale), no classifier.
    NOTE(paper): Eq. 2 adds learnable absolute positions; BEiT v2's code has the relative bias only
    (`--no-abs_pos_emb`). The paper's is the default: both."""
    cfg = {**VIT_PRESETS[name], **({"img_size": img_size} if img_size else {}), "num_classes": 0,
           "mask_token": True, "rel_pos_bias": rel_pos_bias, "qv_bias": qv_bias,
           "pos_embed": "learned" if abs_pos_emb else "none", "layer_scale": layer_scale,
           "drop_path": drop_path, "global_pool": "token", **overrides}
    return beit_init_(ViT(ViTConfig(**cfg)), init_std)


class MaskDistill(nn.Module):
    """S and H of Eq. 1: the only trainable module (engine.wrap_model wraps it; not the teacher)."""

    def __init__(self, student, target_dim, init_std=0.02):
        super().__init__()
        self.student = student
        # H: one FC on the final-norm tokens (Table 1 "FC"; EVA §2.2: "normalized and then projected")
        self.head = nn.Linear(student.cfg.embed_dim, target_dim)
        nn.init.trunc_normal_(self.head.weight, std=init_std, a=-init_std, b=init_std)
        nn.init.zeros_(self.head.bias)

    def no_weight_decay(self):
        # BEiT v2 modeling_pretrain.py, EVA-01: only these (and 1-D params, biases) skip decay; the
        # 3-D mask token, the RPE table and the head are decayed
        return {"pos_embed", "cls_token"}

    def forward(self, x, mask):                         # (B, C, H, W) normalized, mask (B, N) bool
        # Eq. 2: masked patch embeddings -> the shared mask token, then cls + positions; blocks; LN.
        # An all-False mask still runs through the mask token (zero gradient): DDP sees every param.
        z = self.student.forward_features(x, mask)      # (B, 1+N, D)
        return self.head(z[:, 1:])                      # (B, N, Dt): predictions at every position


# ----------------------------------------------------------------------------- L: the loss

def mim_loss(pred, target, mask, kind="smooth_l1", beta=1.0):
    """L in Eq. 1 / 3 over the tokens where `mask` (B, N) is True; mask=None: every token (KD,
    Table 5). pred, target (B, N, Dt). Smooth-l1 and MSE average over tokens x channels, cosine over
    tokens. An empty selection gives 0 (not NaN; unilm #551) with the graph kept for backward."""
    if mask is not None:
        pred, target = pred[mask], target[mask]         # (M, Dt): batch-major, then patch index
    pred = pred.float().reshape(-1, pred.shape[-1])     # (M, Dt)
    target = target.float().reshape(-1, target.shape[-1])
    if pred.shape[0] == 0:
        return pred.sum()
    if kind == "smooth_l1":   # 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta (MaskDistill Eq. 3)
        return F.smooth_l1_loss(pred, target, beta=beta)
    if kind == "mse":         # Table 8
        return F.mse_loss(pred, target)
    if kind == "cosine":      # EVA §2.2: negative cosine similarity, -1 when perfect (EVA #125)
        return -F.cosine_similarity(pred, target, dim=-1).mean()
    raise ValueError(f"unknown loss {kind}")


def maskdistill_loss(model, teacher, imgs, mask, args):
    """Eq. 1 for one batch: imgs (B, C, H, W) in [0, 1] at the student's resolution, mask (B, N)."""
    with torch.no_grad():
        target = normalize_target(teacher(imgs), args.target_norm)       # N(T(x)): (B, N, Dt)
    pred = model(normalize_image(imgs, args.student_mean_std), mask)     # H(S(x_M)): (B, N, Dt)
    where = mask if args.num_mask_patches > 0 else None                  # ratio 0: KD, all tokens
    return mim_loss(pred, target, where, args.loss, args.smooth_l1_beta)


# ----------------------------------------------------------------------------- M: masks, in the workers

def mask_count(grid):
    """§3's "about 40%" as BEiT v2 counts it. NOTE(paper): 75 of 196 = 38.3% (its scripts), the
    same fraction on other grids (rescaled to keep it): 98 of 256 for /14 at 224."""
    return round(75 / 196 * grid * grid)


class MaskCollate:
    """collate_fn: stack the crops and draw one block mask per image with the global torch RNG, so
    masks come from the DataLoader workers and follow engine's per-epoch reseeding (exact resume).
    -> (imgs (B, C, H, W) in [0, 1], mask (B, N) bool, True = masked)."""

    def __init__(self, grid, num_mask_patches, min_num_patches=16, exact=True):
        self.num_patches = grid[0] * grid[1]
        self.generator = None
        if num_mask_patches > 0:
            self.generator = BlockMaskGenerator(grid, num_mask_patches, exact=exact,
                                                min_num_patches=min_num_patches)

    def __call__(self, samples):
        imgs = torch.stack([s[0] for s in samples])                           # (B, C, H, W)
        if self.generator is None:                                            # KD: nothing masked
            return imgs, torch.zeros(len(samples), self.num_patches, dtype=torch.bool)
        return imgs, self.generator.batch(len(samples))                       # (B, N)


# ----------------------------------------------------------------------------- all together

def build(args, device="cpu"):
    """Eq. 1's parts for resolved `args`: (model = S + H, trainable; teacher = T, frozen)."""
    student = build_student(args.student, args.img_size, rel_pos_bias=args.rel_pos_bias,
                            abs_pos_emb=args.abs_pos_emb, qv_bias=args.qv_bias,
                            layer_scale=args.layer_scale, drop_path=args.drop_path,
                            init_std=args.init_std)
    teacher = build_teacher(args.teacher, args.teacher_pretrained, student.patch_embed.grid_size,
                            args.target, args.teacher_mean_std, args.teacher_pos_resize)
    return MaskDistill(student, teacher.out_dim, args.init_std).to(device), teacher.to(device)


# ----------------------------------------------------------------------------- presets

# App. A (pre-training), all sizes: batch 2048 (16 GPUs x 128), AdamW eps 1e-8, betas (0.9, 0.999),
# peak lr 1.5e-3 (at 2048), min lr 1e-5, cosine, warmup 10, clip 3.0, wd 0.05, no dropout,
# RandomResizedCrop + color jitter 0.4, 300 epochs; §4.1: block-wise masking, relative positions +
# layer scale as BEiT; the student sees ImageNet mean/std (BEiT v2).
_APP_A = dict(epochs=300, warmup_epochs=10, blr=1.5e-3, lr_batch=2048, batch_size=128,
              weight_decay=0.05, betas=(0.9, 0.999), opt_eps=1e-8, min_lr=1e-5, clip_grad=3.0,
              color_jitter=0.4, student_mean_std="imagenet", teacher_pretrained="openai",
              target="proj", target_norm="ln", loss="smooth_l1", smooth_l1_beta=1.0,
              rel_pos_bias=True, abs_pos_emb=True, qv_bias=True, num_mask_patches=mask_count(14),
              min_mask_patches=16, exact_mask=True, init_std=0.02)
PRESETS = {
    # Table 2 (85.0 at 300 ep): ViT-B/16 student, CLIP-B/16 teacher; App. A: layer scale 0.1,
    # drop path 0.1
    "maskdistill_vit_base_patch16": dict(_APP_A, student="vit_base_patch16", teacher="clip_b16",
                                         layer_scale=0.1, drop_path=0.1),
    # Table 3 (87.6): ViT-L/16, CLIP-L/14 fed 196 px (§4.1); App. A: layer scale 1e-5, drop path 0.2
    "maskdistill_vit_large_patch16": dict(_APP_A, student="vit_large_patch16", teacher="clip_l14",
                                          layer_scale=1e-5, drop_path=0.2),
    # Table 3 (88.3): ViT-H/14 at 224 (16 x 16), CLIP-L/14 at 224; App. A: 1e-5, drop path 0.25
    "maskdistill_vit_huge_patch14": dict(_APP_A, student="vit_huge_patch14", teacher="clip_l14",
                                         layer_scale=1e-5, drop_path=0.25,
                                         num_mask_patches=mask_count(16)),
    # EVA §2.2 + Table 3 + its EVA-01 code: ViT-g/14, absolute positions, no RPE, no layer scale,
    # drop path 0.1; CLIP-L/14 at 224, target ln_post(tokens) @ proj, no extra norm, negative cosine;
    # batch 4096 (128 GPUs x 32), lr 1e-3, betas (0.9, 0.98), eps 1e-6, 150 epochs, warmup 2, clip 3.0,
    # min lr 1e-5, no jitter, CLIP mean/std. NOTE(paper): BEiT v1 masks, at most 105 of 256 (EVA's
    # scripts; 40% would be 102). NOTE(paper): bf16 autocast by default (--precision fp16 adds a
    # GradScaler), no ZeRO-1.
    "eva_g14": dict(_APP_A, student="eva_g14", teacher="clip_l14", rel_pos_bias=False,
                    abs_pos_emb=True, layer_scale=0.0, drop_path=0.1, init_std=0.015, target="proj",
                    target_norm="none", loss="cosine", num_mask_patches=105, exact_mask=False,
                    blr=1e-3, lr_batch=4096, batch_size=32, betas=(0.9, 0.98), opt_eps=1e-6,
                    epochs=150, warmup_epochs=2, color_jitter=0.0, student_mean_std="clip"),
    # NOTE(paper): ours, for a 2-core CPU (minutes): 32 px, patch 4 (8 x 8 grid); the teacher is the
    # MAE quick start's encoder (Table 6 #9 in miniature). 26 of 64 = 40%; a 16-patch minimum block
    # is a quarter of an 8 x 8 grid, too coarse: blocks start at 4 patches (BEiT's class default).
    # 3 epochs of 4096 images at batch 64 (192 steps) at lr 2e-3: a short schedule needs a higher lr.
    "maskdistill_vit_mini": dict(_APP_A, student="vit_mini", teacher="runs/mae_mae_vit_mini/encoder.pt",
                                 layer_scale=0.1, drop_path=0.0, num_mask_patches=26,
                                 min_mask_patches=4, epochs=3, warmup_epochs=0.5, blr=2e-3,
                                 lr_batch=64, batch_size=64, num_train=4096),
    # the test suite's: a vit_test student (4 x 4 grid, 6 of 16 masked), a clip_test teacher
    "maskdistill_vit_test": dict(_APP_A, student="vit_test", teacher="clip_test", layer_scale=0.1,
                                 drop_path=0.0, num_mask_patches=6, min_mask_patches=2, epochs=2,
                                 warmup_epochs=1, blr=1e-3, lr_batch=16, batch_size=16,
                                 num_workers=0, color_jitter=0.0),
}


# ----------------------------------------------------------------------------- training script

def get_args(argv=None):
    p = engine.common_parser("MaskDistill (Peng et al. 2022) / EVA (Fang et al. 2022): masked "
                             "feature distillation.")
    g = p.add_argument_group("teacher T (MaskDistill §3, §4.1, Table 6)")
    g.add_argument("--teacher", default="clip_b16", help="clip_b16 | clip_l14 | an encoder.pt")
    g.add_argument("--teacher_pretrained", default="openai", help="CLIP weights: an open_clip tag "
                   "(downloads once), a local file, or 'random' (smoke runs only)")
    g.add_argument("--teacher_mean_std", default="auto", choices=["auto", "imagenet", "clip"],
                   help="auto: CLIP's for CLIP, else what the encoder was trained with")
    g.add_argument("--target", default="proj", choices=["proj", "ln", "raw"], help="last-layer "
                   "tokens: ln_post(.) @ proj (BEiT v2 / EVA) | after | before ln_post")
    g.add_argument("--teacher_pos_resize", default="beit2", choices=["beit2", "exact"], help="its "
                   "positions to another grid: BEiT v2's scale factor (G+0.1)/g | exactly G")
    g = p.add_argument_group("normalization N (Eq. 3, Table 8)")
    g.add_argument("--target_norm", default="ln", choices=["ln", "bn", "none"], help="ln: no affine")
    g = p.add_argument_group("student S (Eq. 2, §4.1, App. A)")
    g.add_argument("--student", default="vit_base_patch16", help="a vit.py preset")
    g.add_argument("--img_size", type=int, default=None, help="student resolution (the preset's)")
    on_off = dict(action=argparse.BooleanOptionalAction, default=True)
    g.add_argument("--rel_pos_bias", **on_off, help="one shared relative position bias (§4.1)")
    g.add_argument("--abs_pos_emb", **on_off, help="learned absolute positions (Eq. 2)")
    g.add_argument("--qv_bias", **on_off, help="BEiT's q/v bias, no k bias")
    g.add_argument("--layer_scale", type=float, default=0.1, help="layer scale init, 0 = off")
    g.add_argument("--drop_path", type=float, default=0.1, help="stochastic depth (App. A)")
    g.add_argument("--init_std", type=float, default=0.02, help="trunc-normal init std (BEiT)")
    g.add_argument("--student_mean_std", default="imagenet", choices=["imagenet", "clip"])
    g.add_argument("--color_jitter", type=float, default=0.4, help="App. A: 0.4 (EVA: 0)")
    g = p.add_argument_group("mask M (§3, §4.5)")
    g.add_argument("--num_mask_patches", type=int, default=mask_count(14),
                   help="block-masked patches per image (75 of 196: BEiT v2's 40%%)")
    g.add_argument("--mask_ratio", type=float, default=None, help="if given: num_mask_patches = "
                   "round(ratio x N); 0 = knowledge distillation on all tokens (Table 5)")
    g.add_argument("--min_mask_patches", type=int, default=16, help="smallest block (BEiT: 16)")
    g.add_argument("--exact_mask", **on_off, help="BEiT v2's exact count; no: BEiT v1 / EVA's")
    g = p.add_argument_group("head H and loss L (Table 1, Table 8, EVA §2.2)")
    g.add_argument("--loss", default="smooth_l1", choices=["smooth_l1", "mse", "cosine"],
                   help="Smooth-l1 (Eq. 3) | MSE (Table 8) | negative cosine (Table 8, EVA §2.2)")
    # NOTE(paper): beta is not given: 1.0, the unadorned nn.SmoothL1Loss() of its lineage's code
    g.add_argument("--smooth_l1_beta", type=float, default=1.0, help="quadratic below beta")
    g.add_argument("--opt_eps", type=float, default=1e-8, help="AdamW eps (App. A; EVA: 1e-6)")
    return engine.parse_args(p, PRESETS, argv, script="maskdistill", resolve=resolve_args)


def resolve_args(args, parser):
    """The student's grid decides the mask count (`--mask_ratio` overrides `--num_mask_patches`)."""
    if args.student not in VIT_PRESETS:
        parser.error(f"unknown --student '{args.student}'; choose one of: {', '.join(VIT_PRESETS)}")
    size = {"img_size": args.img_size} if args.img_size else {}
    cfg = ViTConfig(**{**VIT_PRESETS[args.student], **size})
    engine.check_img_size(parser, cfg.img_size, cfg.patch_size)
    args.img_size, grid = cfg.img_size, cfg.img_size // cfg.patch_size
    if args.mask_ratio is not None and not 0 <= args.mask_ratio < 1:
        parser.error(f"--mask_ratio {args.mask_ratio} must be in [0, 1): 0 = distillation on all "
                     f"tokens (Table 5); the default, 75 of 196 patches, is 0.38")
    if args.mask_ratio is not None:
        args.num_mask_patches = round(args.mask_ratio * grid * grid)
    if not 0 <= args.num_mask_patches <= grid * grid:
        parser.error(f"--num_mask_patches {args.num_mask_patches} is not within 0..{grid * grid} "
                     f"({grid}x{grid} grid)")


def build_optimizer(model, args):
    """AdamW over S + H only (App. A); the teacher is not a parameter of `model`: never stepped."""
    return torch.optim.AdamW(engine.param_groups(model, args.weight_decay), lr=args.lr,
                             betas=args.betas, eps=args.opt_eps)


def main(argv=None):
    args = get_args(argv)
    ctx = engine.setup(args)
    model, teacher = build(args, ctx.device)
    grid = model.student.patch_embed.grid_size
    # App. A: RandomResizedCrop (0.2, 1) + flip (+ color jitter); each network normalizes its copy
    transform = build_transform("pretrain", args.img_size, mean=None, color_jitter=args.color_jitter)
    train_set = dataset_from_args(args, "train", transform, args.img_size)
    collate = MaskCollate(grid, args.num_mask_patches, args.min_mask_patches, args.exact_mask)
    loader, steps_per_epoch = engine.train_loader(train_set, args, ctx, collate_fn=collate)

    optimizer = build_optimizer(model, args)
    scaler = engine.make_scaler(ctx)                         # fp16 only, else None
    start_epoch, _ = engine.resume(args, model, optimizer, scaler=scaler)
    train_model = engine.wrap_model(model, ctx, args)        # S + H only: the teacher is never DDP'd
    teacher_fn = torch.compile(teacher) if args.compile else teacher
    log = engine.MetricsLog(args.output_dir, ctx)
    target = teacher.target
    if target != args.target:
        target += " (teacher has no proj)"
    n_train = sum(p.numel() for p in model.parameters())
    engine.print0(f"[maskdistill] student {args.student} {grid[0]}x{grid[1]} @ {args.img_size}px, "
                  f"{n_train / 1e6:.2f} M trainable; teacher {args.teacher} @ {teacher.img_size}px, "
                  f"target {target} (Dt {teacher.out_dim}), norm {args.target_norm}, loss "
                  f"{args.loss}; {args.num_mask_patches}/{grid[0] * grid[1]} masked; "
                  f"{len(train_set)} images, {steps_per_epoch} steps/epoch")

    def loss_fn(m, batch):
        imgs, mask = (t.to(ctx.device, non_blocking=True) for t in batch[:2])
        return maskdistill_loss(m, teacher_fn, imgs, mask, args), {}

    for epoch in range(start_epoch, args.epochs):
        loss = engine.train_one_epoch(train_model, loss_fn, loader, optimizer, epoch, args, ctx,
                                      log, scaler=scaler)
        engine.print0(f"[maskdistill] epoch {epoch}: mean loss {loss:.4f}")
        _, saved, done = engine.end_of_epoch(args, ctx, epoch, steps_per_epoch, model, optimizer,
                                             scaler=scaler)
        if saved and ctx.is_master:     # the student alone, for finetune.py --init (drops its [M])
            engine.save_encoder(os.path.join(args.output_dir, "encoder.pt"), model.student,
                                model.student.cfg, "maskdistill.py", args)
        if done:
            break
    engine.finish(args, ctx, ["encoder.pt", "metrics.jsonl", "checkpoint-*.pt"])
    return model


if __name__ == "__main__":
    main()

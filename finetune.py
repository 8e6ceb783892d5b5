"""CLIP Itself is a Strong Fine-tuner (Dong et al., arXiv 2212.06138, "FT-CLIP") in one file, with the fine-tuning and
linear-probe protocols that MAE (arXiv 2111.06377) and MaskDistill (arXiv 2210.10615) evaluate with.

  FT-CLIP §2.1, Table 10  OpenAI CLIP image tower minus ln_post/proj; head = LayerNorm per patch token, mean, Linear
                          (init x 0.001); frozen patch conv; layer-wise lr decay; EMA 0.9998 at batch 2048 (ema.py; Table
                          3) evaluated beside the raw model, headline = best EMA top-1; RandAug, smoothing, no mixup
                          (clip_b16, clip_l14; its code's 384 / 336 runs: clip_b16_384, clip_l14_336)
  FT-CLIP Fig. 3          partial fine-tuning --freeze_blocks k (MAE Fig. 9 is the same protocol)
  MAE App. A.1            fine-tuning an MAE encoder (FINETUNE.md presets vit_*_patch*: mean pool + fc_norm, mixup/cutmix,
                          drop path, crop 0.875) and linear probing (Table 10, *_linprobe: BN + Linear on the cls, LARS)
  MaskDistill App. B, C   fine-tuning its student (maskdistill_vit_*: q/v bias, layer scale, the shared RPE copied into
                          one table per block as BEiT v2 does, App. B "shared relative positional embeddings ✗")
Not here: DeepSpeed (we use torch autocast: bf16, or --precision fp16 with a GradScaler), FT-CLIP Table 13's 3Aug/AugMix, MAE's dist_eval padding.

Run (CPU quick start, built-in `shapes` data, 10 classes; ~5 min each on 2 cores):
    python mae.py --model mae_vit_mini                                             # pre-train, then fine-tune it:
    python finetune.py --model vit_mini --init runs/mae_mae_vit_mini/encoder.pt
    python finetune.py --model vit_mini                                            # from scratch, for comparison
    python finetune.py --model vit_mini_linprobe --init runs/mae_mae_vit_mini/encoder.pt
Real runs (FT-CLIP: total batch 2048 = 8 GPUs x 256 for B, 8 x 64 x accum 4 for L; MAE: 1024):
    torchrun --nproc_per_node=8 finetune.py --model clip_b16 --data /path/to/imagenet
    torchrun --nproc_per_node=8 finetune.py --model vit_base_patch16 --init mae_pretrain_vit_base.pth --accum_iter 4 --data ...
Use the result: --init a checkpoint (its EMA when the run selected by EMA), or export it for timm:
    python finetune.py --export runs/finetune_clip_b16/checkpoint-best.pt --out clip_b16_ft.pth [--ema | --raw]

Shape legend: B batch, C channels, N patches, D width, K classes.
"""
import argparse
import json
import os
import sys
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
from data import CLIP_MEAN, CLIP_STD, IMAGENET_MEAN, IMAGENET_STD, DataError, build_dataset, build_transform, subset_fraction
from ema import ModelEma, decay_for_batch
from vit import PRESETS as VIT_PRESETS
from vit import ViT, ViTConfig, load_clip_state_dict, load_pretrained, read_clip_weights

MEAN_STD = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}
# What an encoder.pt's `vit_config` decides; the recipe decides the rest (img_size, pooling, head, drop path, ...).
ARCH_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim", "norm_eps", "act", "qkv_bias", "qv_bias",
               "patch_bias", "norm_pre", "rel_pos_bias", "layer_scale")
SIZE_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim")    # must match --arch (issue: vit_mini got 0.11 M)


def describe(cfg):
    d = {k: cfg.get(k, ViTConfig.__dataclass_fields__[k].default) for k in SIZE_FIELDS}
    return f"patch {d['patch_size']}, width {d['embed_dim']}, depth {d['depth']}, {d['num_heads']} heads" + \
        (f", MLP {d['mlp_dim']}" if d["mlp_dim"] else "")


# ----------------------------------------------------------------------------- layer-wise lr decay

def layer_id(name, depth):
    """BEiT/MAE rule (MAE util/lr_decay.py, FT-CLIP optim_factory.py; reference §2.3, §3.3): the embeddings are layer 0
    (CLIP's ln_pre too), block i is layer i+1 (its own RPE table too, BEiT v2), everything on top (a shared rel_pos_bias,
    norm, fc_norm, head) is layer depth+1."""
    if name in ("cls_token", "pos_embed", "mask_token") or name.startswith(("patch_embed.", "norm_pre.")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups_lrd(model, weight_decay, layer_decay):
    """AdamW groups whose lr is scaled by layer_decay ** (depth + 1 - layer_id): 1 for the head, layer_decay for the last
    block, ..., layer_decay ** (depth + 1) for the patch embedding (FT-CLIP §2.1 "LLRD", Tables 4-5)."""
    depth = len(model.blocks)

    def lr_scale_of(name):
        i = layer_id(name, depth)
        return i, layer_decay ** (depth + 1 - i)
    return engine.param_groups(model, weight_decay, lr_scale_of=lr_scale_of)


class LARS(torch.optim.Optimizer):
    """LARS (You et al. 2017) as MAE's util/lars.py has it for linear probing (App. A.1 Table 10): SGD with momentum
    whose update for each weight matrix (ndim > 1) is rescaled by trust * ||w|| / ||g + wd w||; biases and norms
    (ndim <= 1) get neither weight decay nor the trust ratio."""

    def __init__(self, params, lr=0.0, weight_decay=0.0, momentum=0.9, trust_coefficient=0.001):
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                                      trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self, closure=None):
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is None:
                    continue
                dp = p.grad
                if p.ndim > 1:
                    dp = dp.add(p, alpha=g["weight_decay"])
                    w_norm, u_norm = torch.norm(p), torch.norm(dp)
                    one = torch.ones_like(w_norm)
                    q = torch.where(w_norm > 0, torch.where(u_norm > 0, g["trust_coefficient"] * w_norm / u_norm, one), one)
                    dp = dp.mul(q)
                mu = self.state[p].setdefault("mu", torch.zeros_like(p))
                mu.mul_(g["momentum"]).add_(dp)
                p.add_(mu, alpha=-g["lr"])


def build_optimizer(model, args):
    # linear probe: only the head is trainable, and it is layer depth + 1 (scale 1): one lr, as MAE main_linprobe
    groups = param_groups_lrd(model, args.weight_decay, args.layer_decay)
    if args.optimizer == "lars":
        return LARS(groups, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "sgd":                                           # MAE Table 10: "SGD works similarly"
        return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    return torch.optim.AdamW(groups, lr=args.lr, betas=args.betas)


# ----------------------------------------------------------------------------- the model and its weights

def load_init(path, ema=None, flag="--init"):
    """An encoder.pt (engine.save_encoder: {"model", "vit_config", ...}), an official MAE checkpoint ({"model": ...},
    timm names), a finetune.py checkpoint, or a bare state dict. A finetune.py checkpoint also holds its EMA: `ema` True
    takes it, False the raw weights, None the EMA when its run selected checkpoints by EMA accuracy (checkpoint-best.pt
    is FT-CLIP's best-EMA model, reference §3.6). Returns (checkpoint, state dict, EMA used: True / False / None = none
    in the file)."""
    try:
        ckpt = engine.load_file(path)                   # SystemExit naming the path if it is missing
    except Exception as e:                              # noqa: BLE001 - e.g. a pickled argparse Namespace inside
        raise SystemExit(f"{flag} {path}: cannot be loaded with weights_only=True ({type(e).__name__}); "
                         f"re-save just its state dict: torch.save({{'model': ckpt['model']}}, path)") from None
    has_ema = isinstance(ckpt.get("ema"), dict) and bool(ckpt["ema"])
    if ema is None and has_ema:
        ema = (ckpt.get("extra") or {}).get("selected_by") == "ema"
    if ema and not has_ema:
        raise SystemExit(f"{flag} {path}: this checkpoint holds no EMA weights (trained with --ema_decay 0, or not a "
                         f"finetune.py checkpoint); drop the EMA flag to use its weights")
    return ckpt, ckpt["ema"] if ema else ckpt.get("model", ckpt.get("state_dict", ckpt)), ema


def vit_config_of(ckpt):
    """The architecture a checkpoint was built with: an encoder.pt's `vit_config`, or the one finetune.py records in its
    checkpoints' args (None for official MAE / timm / bare state dicts: --model's arch decides)."""
    return (ckpt.get("vit_config") or (ckpt.get("args") or {}).get("vit_config")) if isinstance(ckpt, dict) else None


def init_head(head, std, scale):
    """MAE: trunc-normal(2e-5), bias 0 (reference §2.2). FT-CLIP / BEiT: trunc-normal(0.02) and PyTorch's default bias,
    both x 0.001 (§3.1). Either way the classifier starts near zero: all logits about equal, loss about ln K."""
    nn.init.trunc_normal_(head.weight, std=std)
    if scale == 1.0:
        nn.init.zeros_(head.bias)
    else:
        bound = head.weight.shape[1] ** -0.5                             # nn.Linear's default bias init
        nn.init.uniform_(head.bias, -bound, bound)
        with torch.no_grad():
            head.weight.mul_(scale)
            head.bias.mul_(scale)


def build_model(args, num_classes, load_clip=True):
    """The recipe's ViT with a K-way head and its weights (--pretrained CLIP / --init encoder), frozen parts frozen."""
    cfg = dict(VIT_PRESETS[args.arch])
    cfg.update({k: getattr(args, k) for k in ("qv_bias", "rel_pos_bias", "shared_rel_pos_bias", "layer_scale")
                if getattr(args, k) is not None})
    state, pos_embed = None, cfg.get("pos_embed", "learned")
    if args.init:
        ckpt, state, args.init_ema = load_init(args.init, args.init_ema)
        vit_config = vit_config_of(ckpt)
        if vit_config:                                  # a mae.py / maskdistill.py encoder: its architecture, our recipe
            size = lambda c: tuple(c.get(k, ViTConfig.__dataclass_fields__[k].default) for k in SIZE_FIELDS)  # noqa: E731
            if size(vit_config) != size(cfg):           # the variant fields below may differ; the size may not
                fits = [a for a in VIT_PRESETS if size(VIT_PRESETS[a]) == size(vit_config)]
                raise SystemExit(f"--init {args.init} is a {describe(vit_config)} encoder{f' ({fits[0]})' if fits else ''}"
                                 f", but --model {args.model} builds {args.arch} ({describe(cfg)}): pass "
                                 + (f"--arch {fits[0]} (or a --model preset built on it)" if fits else
                                    "the --model / --arch it was pre-trained with"))
            cfg.update({k: v for k, v in vit_config.items() if k in ARCH_FIELDS})
            pos_embed = vit_config.get("pos_embed", pos_embed)
    # MAE App. A.1: the fixed sin-cos table becomes a trainable (learned) one for fine-tuning; "none" stays none.
    cfg.update(img_size=args.img_size or cfg.get("img_size", 224), num_classes=num_classes, global_pool=args.global_pool,
               drop_path=args.drop_path, proj_dim=0, mask_token=False, pos_embed="none" if pos_embed == "none" else "learned")
    model = ViT(ViTConfig(**cfg))
    if not 0 <= args.freeze_blocks <= model.cfg.depth:
        raise SystemExit(f"--freeze_blocks {args.freeze_blocks} is not within 0..{model.cfg.depth} (the model's depth)")
    init_head(model.head, args.head_init_std, args.head_init_scale)
    if args.linprobe:   # MAE main_linprobe: BN without affine on the feature, then the linear classifier (App. A.1)
        model.head = nn.Sequential(nn.BatchNorm1d(model.num_features, affine=False, eps=1e-6), model.head)
    try:
        if args.pretrained and load_clip:
            load_clip_state_dict(model, read_clip_weights(args.arch, args.pretrained))   # drops ln_post, proj (§2.1)
        elif state is not None:
            load_pretrained(model, state, log=engine.print0)   # resizes positions / RPE; drops an unfit head, norm, mask token
    except ValueError as e:
        raise SystemExit(f"--{'pretrained' if args.pretrained else 'init'} {args.pretrained or args.init} does not fit "
                         f"--model {args.model} (arch {args.arch}): {e}") from None
    # Freezing = requires_grad False: no gradient, no optimizer state, no weight decay; the weights stay bit-identical.
    if args.linprobe:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    if args.freeze_patch_embed:                         # FT-CLIP code: conv1 frozen at 224 ("from DeCLIP", reference §3.1)
        model.patch_embed.requires_grad_(False)
    if args.freeze_blocks:                              # FT-CLIP Fig. 3 / MAE Fig. 9: tune only the last depth - k blocks
        for m in [model.patch_embed, model.norm_pre, model.rel_pos_bias, *model.blocks[:args.freeze_blocks]]:
            if m is not None:                           # the RPE is shared by all blocks: frozen blocks need it fixed too
                m.requires_grad_(False)
        for p in (model.cls_token, model.pos_embed):
            if p is not None:
                p.requires_grad_(False)
    return model


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model, loader, ctx):
    """(top-1 %, top-5 %) over the whole val split: each rank counts its share (engine.eval_loader), counts are summed."""
    was_training = model.training
    model.eval()
    counts = torch.zeros(3, dtype=torch.float64, device=ctx.device)      # top-1 hits, top-5 hits, images
    for imgs, target in loader:
        imgs, target = imgs.to(ctx.device, non_blocking=True), target.to(ctx.device, non_blocking=True)
        with ctx.autocast():
            logits = model(imgs)                                         # (B, K)
        hit = logits.topk(min(5, logits.shape[1]), dim=1).indices == target[:, None]    # (B, 5) bool
        counts += torch.stack([hit[:, 0].sum(), hit.any(dim=1).sum(), torch.tensor(len(target), device=ctx.device)])
    engine.all_reduce_sum(counts)
    model.train(was_training)
    n = max(counts[2].item(), 1.0)
    return 100 * counts[0].item() / n, 100 * counts[1].item() / n


# ----------------------------------------------------------------------------- presets (the papers' recipes)

# FT-CLIP Table 10 (B) + the released code (reference §3): AdamW lr 6e-4 at a total batch of 2048 (8 GPUs x 256), layer
# decay 0.6, wd 0.05, betas (0.9, 0.999), 10 warmup + 50 epochs, cosine to 1e-6 (§3.5), RandAug m9 mstd0.5, smoothing
# 0.1, no mixup/cutmix (Table 6), no drop path (Table 15), erasing 0.25 (Table 7), EMA 0.9998 per step at 2048 (Table 3;
# scaled to other batches, ema.decay_for_batch), CLIP mean/std, eval resize 224 -> crop 224 (crop 1.0), no clipping, no
# layer scale / RPE (Table 12).
_FT_CLIP = dict(pretrained="openai", global_pool="ln_avg", head_init_std=0.02, head_init_scale=1e-3,
                freeze_patch_embed=True, optimizer="adamw", blr=6e-4, lr_batch=2048, batch_size=256, accum_iter=1,
                layer_decay=0.6, weight_decay=0.05, betas=(0.9, 0.999), epochs=50, warmup_epochs=10, min_lr=1e-6,
                clip_grad=None, aa="rand-m9-mstd0.5-inc1", smoothing=0.1, mixup=0.0, cutmix=0.0, drop_path=0.0,
                reprob=0.25, crop_scale=(0.08, 1.0), crop_pct=1.0, mean_std="clip", ema_decay=None, ema_base_decay=0.9998,
                linprobe=False)
# MAE FINETUNE.md (reference §2.5), ViT-B: blr 5e-4 x batch / 256 at 32 GPUs x 32 = 1024 (8 GPUs: --accum_iter 4), layer
# decay 0.65, 100 epochs, drop path 0.1, warmup 5, min lr 1e-6, mixup 0.8, cutmix 1.0, smoothing 0.1, erasing 0.25, mean
# pool + fc_norm, head trunc-normal 2e-5, eval crop 0.875 (256 -> 224), ImageNet mean/std, no EMA.
# NOTE(paper): MAE Table 9 prints blr 1e-3, layer decay 0.75, drop path 0.1 (B/L) / 0.2 (H); the released FINETUNE.md
# recipes (used here) differ, as mae#91 points out.
_MAE_FT = dict(_FT_CLIP, pretrained="", global_pool="avg", head_init_std=2e-5, head_init_scale=1.0,
               freeze_patch_embed=False, blr=5e-4, lr_batch=256, batch_size=32, layer_decay=0.65, epochs=100,
               warmup_epochs=5, mixup=0.8, cutmix=1.0, drop_path=0.1, crop_pct=0.875, mean_std="imagenet", ema_base_decay=0.0)
# MaskDistill App. C (BEiT's recipe): peak lr at batch 1024 (8 GPUs x 128), RandAug 9/0.5, erasing 0.25, mixup 0.8, cutmix
# 1.0, min lr 1e-6; BEiT's head init scale 0.001; the App. A student: q/v bias, RPE, layer scale, abs positions. App. B:
# "shared relative positional embeddings ✗": the pre-trained shared table is copied into every block (BEiT v2 fine-tuning).
_MASKDISTILL_FT = dict(_MAE_FT, lr_batch=1024, batch_size=128, head_init_std=0.02, head_init_scale=1e-3,
                       qv_bias=True, rel_pos_bias=True, shared_rel_pos_bias=False)
# MAE App. A.1 Table 10 / main_linprobe.py (reference §2.6): cls token after the final norm, BN + Linear, LARS, blr 0.1 at
# 16384 (32 GPUs x 512), wd 0, warmup 10, 90 epochs (L/H 50), min lr 0, crop + flip only, no smoothing, no drop path.
_MAE_LINPROBE = dict(_MAE_FT, linprobe=True, global_pool="token", head_init_std=0.01, optimizer="lars", blr=0.1,
                     batch_size=512, layer_decay=1.0, weight_decay=0.0, epochs=90, warmup_epochs=10, min_lr=0.0,
                     aa="", reprob=0.0, mixup=0.0, cutmix=0.0, smoothing=0.0, drop_path=0.0)
# NOTE(paper): ours, for a 2-core CPU: 3 epochs of 32 px shapes (~5 min), MAE App. A.1's recipe otherwise. A 32 px shape
# vanishes under RandomResizedCrop's 8% minimum area, hence crop scale 0.35-1 and eval crop 1.0; 3 epochs is far too
# short for RandAug / erasing / drop path to pay off (measured: 32% instead of 43% top-1 from the MAE mini encoder).
_MINI = dict(_MAE_FT, blr=2e-3, lr_batch=256, batch_size=128, layer_decay=0.75, epochs=3, warmup_epochs=1, aa="",
             reprob=0.0, mixup=0.0, cutmix=0.0, drop_path=0.0, crop_scale=(0.35, 1.0), crop_pct=1.0)

PRESETS = {
    "clip_b16": dict(_FT_CLIP, arch="clip_b16"),
    # FT-CLIP Table 10 (L): lr 4e-4, decay 0.65, warmup 5, 30 epochs; 8 GPUs x 64 x accum 4 = 2048 (reference §3.8)
    "clip_l14": dict(_FT_CLIP, arch="clip_l14", blr=4e-4, layer_decay=0.65, warmup_epochs=5, epochs=30, batch_size=64,
                     accum_iter=4),
    "vit_base_patch16": dict(_MAE_FT, arch="vit_base_patch16"),
    "vit_large_patch16": dict(_MAE_FT, arch="vit_large_patch16", blr=1e-3, layer_decay=0.75, epochs=50, drop_path=0.2),
    # FINETUNE.md runs H on 64 GPUs x 16 (= 1024, as B and L)
    "vit_huge_patch14": dict(_MAE_FT, arch="vit_huge_patch14", blr=1e-3, layer_decay=0.75, epochs=50, drop_path=0.3,
                             batch_size=16),
    # NOTE(paper): §4.1's text gives L layer decay 0.75; App. C's table (used here) gives 0.8.
    "maskdistill_vit_base_patch16": dict(_MASKDISTILL_FT, arch="vit_base_patch16", blr=5e-4, epochs=100,
                                         warmup_epochs=20, layer_decay=0.65, drop_path=0.1, layer_scale=0.1),
    "maskdistill_vit_large_patch16": dict(_MASKDISTILL_FT, arch="vit_large_patch16", blr=5e-4, epochs=50,
                                          warmup_epochs=5, layer_decay=0.8, drop_path=0.2, layer_scale=1e-5),
    "maskdistill_vit_huge_patch14": dict(_MASKDISTILL_FT, arch="vit_huge_patch14", blr=2e-4, epochs=30,
                                         warmup_epochs=5, layer_decay=0.85, drop_path=0.25, layer_scale=1e-5),
    "vit_base_patch16_linprobe": dict(_MAE_LINPROBE, arch="vit_base_patch16"),
    "vit_large_patch16_linprobe": dict(_MAE_LINPROBE, arch="vit_large_patch16", epochs=50),
    "vit_huge_patch14_linprobe": dict(_MAE_LINPROBE, arch="vit_huge_patch14", epochs=50),
    # FT-CLIP's higher resolutions (its Table 11 / README: 86.6 and 88.3), as its code runs them (LightDXY/FT-CLIP
    # scripts/*_384_*.sh, *_336.sh and logs/): the patch conv is trained there (CLIP_B16_384 / CLIP_L14_336: freeze_conv1
    # False), positions are resized bicubic 14->24 / 16->24, eval crop 1.0; B/384: lr 7e-4 at 8 GPUs x 64 x accum 4 =
    # 2048, 50 epochs, warmup 10, decay 0.6; L/336: lr 6e-4 at 24 GPUs x 20 x accum 4 = 1920 (its log: "Batch size =
    # 1920", 667 steps/epoch), 30 epochs, warmup 5, decay 0.65. EMA 0.9998 at their batch, no drop path, as at 224.
    "clip_b16_384": dict(_FT_CLIP, arch="clip_b16", img_size=384, freeze_patch_embed=False, blr=7e-4, batch_size=64,
                         accum_iter=4),
    "clip_l14_336": dict(_FT_CLIP, arch="clip_l14", img_size=336, freeze_patch_embed=False, blr=6e-4, lr_batch=1920,
                         batch_size=20, accum_iter=4, layer_decay=0.65, warmup_epochs=5, epochs=30),
    "vit_mini": dict(_MINI, arch="vit_mini"),
    "vit_mini_linprobe": dict(_MAE_LINPROBE, arch="vit_mini", blr=0.1, batch_size=256, epochs=10, warmup_epochs=1,
                              crop_scale=(0.35, 1.0), crop_pct=1.0, save_every=5),
    # the test suite's (tiny, seconds): EMA 0.9 at their batch (= lr_batch) so a few steps move the average
    "vit_test": dict(_MINI, arch="vit_test", blr=1e-3, lr_batch=16, batch_size=16, epochs=2, aa="", reprob=0.0,
                     ema_base_decay=0.9, num_workers=0, save_every=1),
    "vit_test_linprobe": dict(_MAE_LINPROBE, arch="vit_test", blr=0.1, batch_size=16, epochs=2, warmup_epochs=1,
                              num_workers=0),
    "clip_test": dict(_FT_CLIP, arch="clip_test", pretrained="", blr=3e-3, lr_batch=32, batch_size=32, epochs=20,
                      warmup_epochs=1, layer_decay=0.75, aa="", reprob=0.0, crop_scale=(0.35, 1.0), ema_base_decay=0.9,
                      num_workers=0),
}


# ----------------------------------------------------------------------------- arguments

def get_args(argv=None):
    p = engine.common_parser("Fine-tune / linear-probe a ViT: FT-CLIP (Dong et al. 2022), MAE, MaskDistill protocols. "
                             "Export a fine-tuned checkpoint for timm: finetune.py --export CKPT --out model.pth [--ema|--raw]")
    g = p.add_argument_group("model and weights (FT-CLIP §2.1; MAE App. A.1)")
    g.add_argument("--arch", default="clip_b16", help=f"vit.py architecture: {', '.join(VIT_PRESETS)}")
    g.add_argument("--img_size", type=int, default=None, help="resolution (None = the arch's); positions are resized "
                   "(FT-CLIP's 384 / 336 recipes: --model clip_b16_384 / clip_l14_336)")
    g.add_argument("--pretrained", default="openai", help="CLIP weights: open_clip tag (downloads once), a local file "
                   "(state dict or OpenAI TorchScript .pt), or '' for random init")
    g.add_argument("--init", default="", help="encoder.pt of mae.py / maskdistill.py, an official MAE checkpoint, or a "
                   "finetune.py checkpoint")
    g.add_argument("--init_ema", action=argparse.BooleanOptionalAction, default=None, help="--init a finetune.py "
                   "checkpoint's EMA weights (None: the EMA when its run selected by EMA, as checkpoint-best.pt)")
    g.add_argument("--global_pool", default="ln_avg", choices=["ln_avg", "avg", "token"],
                   help="ln_avg: LN per patch then mean (FT-CLIP); avg: mean then LN (MAE); token: cls after norm")
    g.add_argument("--head_init_std", type=float, default=0.02, help="head trunc-normal std (MAE 2e-5, linprobe 0.01)")
    g.add_argument("--head_init_scale", type=float, default=1e-3, help="head weight and bias x this (FT-CLIP/BEiT 0.001)")
    g.add_argument("--drop_path", type=float, default=0.0, help="stochastic depth (FT-CLIP Table 15: 0)")
    g.add_argument("--freeze_patch_embed", action=argparse.BooleanOptionalAction, default=True,
                   help="freeze the patch conv (FT-CLIP code at 224)")
    g.add_argument("--qv_bias", action=argparse.BooleanOptionalAction, default=None, help="BEiT q/v bias (None = arch's; "
                   "an encoder.pt's vit_config decides these three)")
    g.add_argument("--rel_pos_bias", action=argparse.BooleanOptionalAction, default=None, help="RPE (MaskDistill)")
    g.add_argument("--shared_rel_pos_bias", action=argparse.BooleanOptionalAction, default=None, help="one RPE table for "
                   "all blocks (None = shared; maskdistill_* presets: no, one per block, a shared one copied in: BEiT v2)")
    g.add_argument("--layer_scale", type=float, default=None, help="layer scale init (MaskDistill App. A: 0.1 B, 1e-5 L/H)")
    g = p.add_argument_group("layer-wise lr decay and optimizer (FT-CLIP Tables 4, 5, 10; MAE Table 9, 10)")
    g.add_argument("--layer_decay", type=float, default=0.6, help="lr scale = layer_decay ** (depth + 1 - layer id)")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "lars", "sgd"], help="LARS/SGD: linear probing")
    g = p.add_argument_group("augmentation and regularization (FT-CLIP Tables 6-9, 14, 16; MAE Table 9)")
    g.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="timm RandAugment string ('' = off)")
    g.add_argument("--reprob", type=float, default=0.25, help="RandomErasing probability, pixel mode (Table 7)")
    g.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (FT-CLIP Table 6: 0; MAE: 0.8)")
    g.add_argument("--cutmix", type=float, default=0.0, help="cutmix alpha (FT-CLIP Table 6: 0; MAE: 1.0)")
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing (Table 16)")
    g.add_argument("--crop_scale", type=float, nargs=2, default=(0.08, 1.0), metavar=("LO", "HI"),
                   help="RandomResizedCrop area range (Table 14)")
    g.add_argument("--crop_pct", type=float, default=1.0, help="eval: resize img_size / crop_pct, center crop "
                   "(FT-CLIP 1.0; MAE 0.875)")
    g.add_argument("--mean_std", default="clip", choices=list(MEAN_STD), help="input normalization (FT-CLIP: CLIP's)")
    g = p.add_argument_group("EMA (FT-CLIP §2.1, Table 3)")
    g.add_argument("--ema_decay", type=float, default=None, help="EMA decay per optimizer step, exactly (0 = no EMA; "
                   "horizon 1 / (1 - decay) steps); None: --ema_base_decay scaled to this run's batch")
    g.add_argument("--ema_base_decay", type=float, default=0.9998, help="decay per step at a total batch of --lr_batch "
                   "(FT-CLIP: 0.9998 at 2048); used as ema_base_decay ** (eff_batch / lr_batch): the same horizon in images")
    g = p.add_argument_group("protocols (MAE §4.3 / App. A.1 linear probe and partial fine-tuning; FT-CLIP Fig. 3)")
    g.add_argument("--linprobe", action=argparse.BooleanOptionalAction, default=False,
                   help="frozen encoder, BN + Linear on the cls feature (use a *_linprobe preset for the recipe)")
    g.add_argument("--freeze_blocks", type=int, default=0, help="freeze the embeddings and the first k blocks")
    g.add_argument("--train_fraction", type=float, default=1.0, help="class-stratified fraction of the training labels")
    g.add_argument("--eval_only", action="store_true", help="evaluate --resume PATH (raw + EMA) or --init; no training")
    return engine.parse_args(p, PRESETS, argv, script="finetune", resolve=resolve_args)


def resolve_args(args, parser):
    if args.arch not in VIT_PRESETS:
        parser.error(f"unknown --arch '{args.arch}'; choose one of: {', '.join(VIT_PRESETS)}")
    if args.pretrained and args.init:
        parser.error("give --pretrained (CLIP weights) or --init (an encoder checkpoint), not both; --pretrained '' clears it")
    if args.pretrained and not VIT_PRESETS[args.arch].get("norm_pre"):
        parser.error(f"--pretrained loads CLIP weights into a clip_* arch; for --arch {args.arch} use --init")
    if args.linprobe and args.global_pool != "token":   # MAE #186: with pooling, fc_norm would be a frozen random LN
        parser.error("--linprobe uses the cls token after the final norm: add --global_pool token")
    if (args.mixup > 0 or args.cutmix > 0) and args.batch_size % 2:
        parser.error("mixup/cutmix pair each image with the batch flipped: --batch_size must be even")
    args.crop_scale = tuple(args.crop_scale)
    arch = ViTConfig(**VIT_PRESETS[args.arch])
    engine.check_img_size(parser, args.img_size or arch.img_size, arch.patch_size)
    # ema.py: a fixed per-step decay would shrink the horizon with the batch (8x at 256 vs FT-CLIP's 2048); keep it
    args.ema_scaled = args.ema_decay is None
    if args.ema_scaled:
        args.ema_decay = decay_for_batch(args.ema_base_decay, args.eff_batch_size, args.lr_batch)
    if not 0 <= args.ema_decay < 1:
        parser.error(f"{'--ema_base_decay' if args.ema_scaled else '--ema_decay'} gives an EMA decay of "
                     f"{args.ema_decay:g}, not in [0, 1) (0 = no EMA; FT-CLIP: 0.9998 at batch 2048)")


# ----------------------------------------------------------------------------- export to timm

# arch -> the timm model of the same layout (OpenAI CLIP is QuickGELU: timm's *_clip_quickgelu_* variants of
# vit_base_patch16_clip_224 / vit_large_patch14_clip_224); any resolution via img_size=
TIMM_NAMES = {"clip_b16": "vit_base_patch16_clip_quickgelu_224", "clip_l14": "vit_large_patch14_clip_quickgelu_224",
              "vit_base_patch16": "vit_base_patch16_224", "vit_large_patch16": "vit_large_patch16_224",
              "vit_huge_patch14": "vit_huge_patch14_224"}
# with a relative position bias (MaskDistill / BEiT students): timm's Beit, BEiT v2's fine-tuned layout
BEIT_NAMES = {"vit_base_patch16": "beitv2_base_patch16_224", "vit_large_patch16": "beitv2_large_patch16_224"}


def timm_state_dict(model):
    """(state dict, kwargs) such that timm's VisionTransformer(**kwargs) loads the state dict with strict=True and gives
    the same logits. vit.py already uses timm's names; what differs: FT-CLIP's head (LN on each patch token, then mean)
    is timm's global_pool='avg' with fc_norm=False, where timm applies `norm` to every token before pooling, so our
    fc_norm becomes timm's `norm`; MAE's (mean, then LN) is global_pool='avg', fc_norm=True; BEiT's q/v biases fold
    into one qkv bias (k's is 0); layer scale gamma_1/2 is timm's ls1/ls2.gamma.
    With a relative position bias (a MaskDistill / BEiT student) it is timm's Beit (a port of BEiT's modeling_finetune.py,
    kwargs with use_rel_pos_bias), whose names are ours as they are (q_bias / v_bias, gamma_1/2, one table per block
    blocks.{i}.attn.relative_position_bias_table, or one shared rel_pos_bias.*: use_shared_rel_pos_bias); only the
    heads' norm is renamed as above, and a qkv bias becomes Beit's q/v biases (a k bias cancels in the softmax)."""
    cfg, own = model.cfg, model.state_dict()
    beit = cfg.rel_pos_bias
    if isinstance(model.head, nn.Sequential) or cfg.proj_dim or cfg.patch_bias == cfg.norm_pre:
        raise SystemExit("--export: only fine-tuned classifiers export (not a linear probe's BN + Linear head, not a "
                         "CLIP projection; timm has a bias-free patch conv exactly when it has pre_norm)")
    if beit and (cfg.norm_pre or cfg.act != "gelu"):
        raise SystemExit("--export: a relative position bias makes this timm's Beit, which has neither CLIP's ln_pre nor "
                         "QuickGELU: timm has no model of this layout (fine-tune CLIP without --rel_pos_bias to export it)")
    sd = {}
    for k, v in own.items():
        if k == "mask_token" or (k.endswith("attn.v_bias") and not beit):   # [MASK]: pre-training only; v_bias: below
            continue
        if k.endswith("attn.q_bias") and not beit:      # (3D,) = [q | 0 | v], as vit.Attention builds it
            k, v = k.replace("q_bias", "qkv.bias"), torch.cat([v, torch.zeros_like(v), own[k.replace("q_bias", "v_bias")]])
        elif k.endswith("attn.qkv.bias") and beit:      # Beit's k bias is fixed at 0: drop ours (a constant per query)
            q, _, v = v.chunk(3)
            sd[k.replace("qkv.bias", "q_bias")], k = q.detach().clone(), k.replace("qkv.bias", "v_bias")
        elif ".gamma_" in k and not beit:
            k = k.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        elif k.startswith("fc_norm.") and cfg.global_pool == "ln_avg":
            k = "norm." + k.removeprefix("fc_norm.")
        sd[k] = v.detach().clone()
    D = cfg.embed_dim
    kwargs = dict(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=D, depth=cfg.depth, num_heads=cfg.num_heads,
                  mlp_ratio=(cfg.mlp_dim or 4 * D) / D, qkv_bias=cfg.qkv_bias or cfg.qv_bias,
                  init_values=cfg.layer_scale or None, num_classes=cfg.num_classes,
                  global_pool="token" if cfg.global_pool == "token" else "avg",
                  norm_eps=cfg.norm_eps)           # timm wants norm_layer=partial(nn.LayerNorm, eps=norm_eps)
    if beit:
        kwargs.update(use_abs_pos_emb=cfg.pos_embed != "none", use_rel_pos_bias=not cfg.shared_rel_pos_bias,
                      use_shared_rel_pos_bias=cfg.shared_rel_pos_bias, use_fc_norm=cfg.global_pool == "avg")
    else:
        kwargs.update(pre_norm=cfg.norm_pre, pos_embed="none" if cfg.pos_embed == "none" else "learn",
                      fc_norm=cfg.global_pool == "avg", act_layer="quick_gelu" if cfg.act == "quick_gelu" else "gelu")
    return sd, kwargs


def timm_create_args(arch, kw):
    """(name, kwargs) for timm.create_model(name, pretrained=False, **kwargs) that rebuilds an export of `arch` (kw: from
    timm_state_dict); name None when timm has no model of that layout. beitv2_* default to layer scale 1e-5, no
    absolute positions, per-block tables: all said explicitly."""
    beit = "use_rel_pos_bias" in kw
    keys = ("use_fc_norm", "use_abs_pos_emb", "use_rel_pos_bias", "use_shared_rel_pos_bias") if beit else ("fc_norm",)
    keys = ("img_size", "num_classes", "global_pool", *keys, "init_values")
    return (BEIT_NAMES if beit else TIMM_NAMES).get(arch), {k: kw[k] for k in keys if kw[k] is not None or beit}


def export_main(argv):
    """python finetune.py --export CKPT --out model.pth [--ema | --raw]: a finetune.py checkpoint's EMA (default when
    its run selected by EMA, as checkpoint-best.pt) or raw weights as a plain state dict that timm loads (its
    VisionTransformer; its Beit for a model with a relative position bias)."""
    p = argparse.ArgumentParser(prog="finetune.py --export", description=export_main.__doc__)
    p.add_argument("--export", required=True, metavar="CKPT", help="a finetune.py checkpoint (e.g. checkpoint-best.pt)")
    p.add_argument("--out", required=True, help="where to write the timm state dict")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ema", dest="ema", action="store_const", const=True, default=None, help="the EMA weights")
    g.add_argument("--raw", dest="ema", action="store_const", const=False, help="the raw (non-EMA) weights")
    a = p.parse_args(argv)
    ckpt, state, ema = load_init(a.export, a.ema, flag="--export")
    cfg, args = vit_config_of(ckpt), ckpt.get("args") or {}
    if not cfg or args.get("linprobe"):
        raise SystemExit(f"--export {a.export}: not a finetune.py fine-tuning checkpoint (no vit_config in its args, or "
                         f"a linear probe); give a checkpoint-*.pt from finetune.py")
    model = ViT(ViTConfig(**{k: v for k, v in cfg.items() if k in ViTConfig.__dataclass_fields__})).eval()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SystemExit(f"--export {a.export}: its weights do not fit its recorded vit_config: {str(e)[:300]!r}") from None
    sd, kw = timm_state_dict(model)
    # check before writing: timm's own model (VisionTransformer or Beit), strict load, the same logits on a random image
    from functools import partial
    from timm.models.beit import Beit
    from timm.models.vision_transformer import VisionTransformer
    cls = Beit if "use_rel_pos_bias" in kw else VisionTransformer
    ref = cls(**{k: v for k, v in kw.items() if k != "norm_eps"}, norm_layer=partial(nn.LayerNorm, eps=kw["norm_eps"])).eval()
    ref.load_state_dict(sd, strict=True)
    x = torch.randn(2, model.cfg.in_chans, model.cfg.img_size, model.cfg.img_size)
    with torch.no_grad():
        err = (ref(x) - model(x)).abs().max().item()
    if not err <= 1e-4:
        raise SystemExit(f"--export {a.export}: timm's logits differ from ours by {err:.2e}; nothing written")
    engine.atomic_save(sd, a.out)
    name, over = timm_create_args(args.get("arch"), kw)
    call = (f"timm.create_model({name!r}, pretrained=False, {', '.join(f'{k}={v!r}' for k, v in over.items())})" if name
            else f"{cls.__module__}.{cls.__name__}(**{ {k: v for k, v in kw.items() if k != 'norm_eps'} }, "
                 f"norm_layer=functools.partial(torch.nn.LayerNorm, eps={kw['norm_eps']}))")
    print(f"[export] {'EMA' if ema else 'raw'} weights of {a.export} (epoch {ckpt.get('epoch')}) -> {a.out} (timm's "
          f"logits = ours to {err:.1e}); load with {call}.load_state_dict(torch.load({a.out!r}))", flush=True)
    return sd, kw


# ----------------------------------------------------------------------------- training script

def write_json(ctx, path, obj):
    if ctx.is_master:
        with open(path, "w") as f:
            json.dump(obj, f, indent=2)


def weights_line(args, start_epoch):
    """Where the weights come from, for the start-up line."""
    if getattr(args, "resumed_from", None):             # engine.resume: every weight is the checkpoint's
        given = f"--init {args.init}" if args.init else f"--pretrained {args.pretrained}" if args.pretrained else ""
        return f"checkpoint {args.resumed_from} (epoch {start_epoch - 1} done)" + (f", not {given}" if given else "")
    if args.init:                                       # build_model resolved init_ema: None = the file has no EMA
        return f"--init {args.init}" + {True: " (its EMA weights; --no-init_ema for the raw ones)",
                                        False: " (its raw weights, not the EMA)", None: ""}[args.init_ema]
    return f"--pretrained {args.pretrained}" if args.pretrained else "random init (WARNING: nothing pre-trained)"


def ema_line(args):
    if not args.ema_decay:
        return "EMA off"
    scaled = decay_for_batch(args.ema_base_decay, args.eff_batch_size, args.lr_batch)
    return (f"EMA decay {args.ema_decay:.6g} per step (" + (f"the recipe's {args.ema_base_decay:g} at batch {args.lr_batch}, "
            f"scaled to batch {args.eff_batch_size}: ^({args.eff_batch_size}/{args.lr_batch}), the same horizon in images"
            if args.ema_scaled else f"--ema_decay exactly; the recipe's {args.ema_base_decay:g} at batch {args.lr_batch} "
            f"would be {scaled:.6g} at batch {args.eff_batch_size}") + f"; horizon {1 / (1 - args.ema_decay):.0f} steps)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--export" or a.startswith("--export=") for a in argv):
        return export_main(argv)
    args = get_args(argv)
    ctx = engine.setup(args)
    mean, std = MEAN_STD[args.mean_std]
    img_size = args.img_size or VIT_PRESETS[args.arch].get("img_size", 224)
    data_kw = dict(img_size=img_size, data_root=args.data_root, download=args.download, num_train=args.num_train,
                   num_val=args.num_val)
    if args.linprobe:       # MAE App. A.1: "regularization is in general harmful for linear probing": crop + flip only
        train_tf = build_transform("linprobe", img_size, mean, std, scale=args.crop_scale)
    else:
        train_tf = build_transform("finetune", img_size, mean, std, scale=args.crop_scale, aa=args.aa, reprob=args.reprob)
    try:
        val_set = build_dataset(args.data, "val", build_transform("eval", img_size, mean, std, crop_pct=args.crop_pct), **data_kw)
        train_set = None if args.eval_only else build_dataset(args.data, "train", train_tf, **data_kw)
    except DataError as e:
        raise SystemExit(f"--data {args.data}: {e}") from None
    if train_set is not None and args.train_fraction < 1:
        train_set = subset_fraction(train_set, args.train_fraction, seed=args.seed)
    num_classes = len(val_set.classes)

    # a checkpoint to resume from replaces every weight: then CLIP's are not fetched (the architecture is --arch's)
    resuming = bool(args.resume) and (args.resume != "auto" or bool(engine.list_checkpoints(args.output_dir)))
    model = build_model(args, num_classes, load_clip=not resuming).to(ctx.device)
    args.vit_config = asdict(model.cfg)                 # saved in every checkpoint's args: --export and --init rebuild it
    optimizer = build_optimizer(model, args)
    # DDP broadcasts rank 0's weights (each rank drew its own random head): copy the EMA after that, then resume both
    train_model = engine.wrap_model(model, ctx, args)
    ema = ModelEma(model, args.ema_decay) if args.ema_decay > 0 else None     # starts at the *pre-trained* weights
    scaler = engine.make_scaler(ctx)                    # fp16 only, else None
    start_epoch, extra = engine.resume(args, model, optimizer, scaler=scaler, ema=ema)
    val_loader = engine.eval_loader(val_set, args, ctx)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    engine.print0(f"[finetune] {args.model} (arch {args.arch} @ {img_size}px, pool {args.global_pool}"
                  f"{', linear probe' if args.linprobe else ''}{f', {args.freeze_blocks} blocks frozen' if args.freeze_blocks else ''}): "
                  f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params, {n_train / 1e6:.3f} M trainable; "
                  f"{num_classes} classes; weights: {weights_line(args, start_epoch)}")

    if args.eval_only:                                  # the EMA only exists in a checkpoint (--resume)
        res = dict(zip(["acc1", "acc5"], evaluate(model, val_loader, ctx)))
        res.update(zip(["acc1_ema", "acc5_ema"], evaluate(ema.module, val_loader, ctx) if ema is not None and args.resume else ()))
        engine.print0(f"[finetune] eval on {len(val_set)} images: " + ", ".join(f"{k} {v:.2f}" for k, v in res.items()))
        write_json(ctx, os.path.join(args.output_dir, "eval.json"), res)
        engine.cleanup()
        return model

    loader = engine.train_loader(train_set, args, ctx)
    steps_per_epoch = len(loader) // args.accum_iter
    if steps_per_epoch == 0:
        raise SystemExit(f"{len(train_set)} images is less than one step of {args.eff_batch_size}; lower --batch_size")
    engine.print0(f"[finetune] recipe: lr {args.blr:g} at batch {args.lr_batch} -> {args.lr:.3g} at this run's batch "
                  f"{args.eff_batch_size}; layer decay {args.layer_decay}; {ema_line(args)}; "
                  f"{len(train_set)} train / {len(val_set)} val images, {steps_per_epoch} steps/epoch")
    log = engine.MetricsLog(args.output_dir, ctx)
    mixup_fn = None
    if args.mixup > 0 or args.cutmix > 0:               # MAE Table 9: mixup 0.8 / cutmix 1.0, switch 0.5, per batch
        from timm.data import Mixup
        mixup_fn = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, label_smoothing=args.smoothing,
                         num_classes=num_classes)

    def loss_fn(m, batch):
        imgs, target = batch[0].to(ctx.device, non_blocking=True), batch[1].to(ctx.device, non_blocking=True)
        if mixup_fn is not None:
            imgs, target = mixup_fn(imgs, target)       # target: (B, K) soft labels, smoothing folded in
            logits = m(imgs).float()                    # (B, K)
            return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean(), {}   # timm SoftTargetCrossEntropy
        return F.cross_entropy(m(imgs).float(), target, label_smoothing=args.smoothing), {}

    # best-so-far values live in every checkpoint's `extra`, so --resume auto continues them
    best = dict(best_acc1=None, best_acc5=None, best_acc1_epoch=None, best_acc1_ema=None, best_acc5_ema=None,
                best_acc1_ema_epoch=None)
    best.update(extra)
    for epoch in range(start_epoch, args.epochs):
        loss = engine.train_one_epoch(train_model, loss_fn, loader, optimizer, epoch, args, ctx, log, model=model,
                                      ema=ema, scaler=scaler)
        acc1, acc5 = evaluate(model, val_loader, ctx)
        acc1_ema, acc5_ema = evaluate(ema.module, val_loader, ctx) if ema is not None else (None, None)
        step, save, done = engine.end_of_epoch(args, epoch, steps_per_epoch)
        log.log(epoch=epoch, step=step, val_acc1=acc1, val_acc5=acc5, val_acc1_ema=acc1_ema, val_acc5_ema=acc5_ema)
        if best["best_acc1"] is None or acc1 > best["best_acc1"]:
            best.update(best_acc1=acc1, best_acc5=acc5, best_acc1_epoch=epoch)
        if ema is not None and (best["best_acc1_ema"] is None or acc1_ema > best["best_acc1_ema"]):
            best.update(best_acc1_ema=acc1_ema, best_acc5_ema=acc5_ema, best_acc1_ema_epoch=epoch)
        best.update(last_acc1=acc1, last_acc5=acc5, last_acc1_ema=acc1_ema, last_acc5_ema=acc5_ema, last_epoch=epoch,
                    best_epoch=best["best_acc1_ema_epoch" if ema is not None else "best_acc1_epoch"],
                    selected_by="ema" if ema is not None else "raw")
        engine.print0(f"[finetune] epoch {epoch}: train loss {loss:.4f} | val top-1 {acc1:.2f} top-5 {acc5:.2f}"
                      + (f" | EMA top-1 {acc1_ema:.2f} top-5 {acc5_ema:.2f}" if ema is not None else ""))
        # FT-CLIP's "Max accuracy" is the best EMA top-1 over epochs (reference §3.6): checkpoint-best follows it
        if best["best_epoch"] == epoch:
            engine.save_checkpoint(args, ctx, epoch, model, optimizer, step=step, scaler=scaler, ema=ema, extra=best,
                                   name="checkpoint-best.pt")
        if save:
            engine.save_checkpoint(args, ctx, epoch, model, optimizer, step=step, scaler=scaler, ema=ema, extra=best)
        if done:
            break
    write_json(ctx, os.path.join(args.output_dir, "summary.json"), best)
    if best["best_acc1"] is not None:
        engine.print0(f"[finetune] best top-1 {best['best_acc1']:.2f} (raw, epoch {best['best_acc1_epoch']}), last "
                      f"{best['last_acc1']:.2f} (raw)" + (f"; best EMA top-1 {best['best_acc1_ema']:.2f} (epoch "
                      f"{best['best_acc1_ema_epoch']}: FT-CLIP's headline number), last {best['last_acc1_ema']:.2f} (EMA)"
                      if ema is not None else "") + f" -> {os.path.join(args.output_dir, 'summary.json')}")
    engine.cleanup()
    return model


if __name__ == "__main__":
    main()

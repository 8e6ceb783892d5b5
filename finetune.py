"""CLIP Itself is a Strong Fine-tuner (Dong et al., arXiv 2212.06138, "FT-CLIP"), with the
fine-tuning and linear-probe protocols of MAE (arXiv 2111.06377) and MaskDistill (2210.10615).

FT-CLIP in this code (§2.1, Table 10):
  image tower    CLIP's, minus ln_post and proj; patch conv frozen   build_model
  head           LayerNorm on each patch token, their mean, Linear x 0.001
                 (vit.ViT.pool_patches "ln_avg"; init_head). NOTE(paper): §2.1 says "LayerNorm + FC
                 on average pooling"; LN before the mean and the x 0.001 init are its code's
  LLRD           lr x layer_decay ** (depth + 1 - layer id)           layer_id, param_groups_lrd
  EMA 0.9998     of the weights, evaluated beside them; the best EMA top-1 is the headline
                 (ema.ModelEma, updated by engine.train_one_epoch)    evaluate_raw_and_ema, best_of
  recipe         lr, decay, epochs, RandAug, smoothing, no mixup     PRESETS["clip_b16"], "clip_l14"
Also: MAE App. A.1 fine-tuning (mean pool + fc_norm, mixup, drop path: vit_*_patch*) and linear
probing (BN + Linear on the frozen cls token, LARS: *_linprobe); MaskDistill App. B-C
(maskdistill_vit_*: one RPE table per block); partial fine-tuning (FT-CLIP Fig. 3, MAE Fig. 9:
--freeze_blocks). Not here: DeepSpeed, 3Aug / AugMix.

Run (CPU, built-in data, minutes on 2 cores), after `python mae.py --model mae_vit_mini --data atoms`:
    python finetune.py --model vit_mini --data atoms --init runs/mae_mae_vit_mini/encoder.pt
    python finetune.py --model vit_mini_linprobe --data atoms --init runs/mae_mae_vit_mini/encoder.pt
Real run (FT-CLIP: total batch 2048 = 8 GPUs x 256 for B):
    torchrun --nproc_per_node=8 finetune.py --model clip_b16 --data /path/to/imagenet
Then --init a checkpoint (its EMA if its run selected by EMA) or `python weights.py export CKPT`.
Shapes: B batch, C channels, N patches, D width, K classes.
"""
import argparse
import os
import sys
from dataclasses import asdict

import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
from data import MEAN_STD, build_transform, dataset_from_args, subset_fraction
from ema import ModelEma, add_ema_args, describe_decay, resolve_ema_decay
from vit import PRESETS as VIT_PRESETS
from vit import ViT, ViTConfig
from weights import init_config, load_start_weights


def layer_id(name, depth):
    """BEiT / MAE rule (MAE util/lr_decay.py, FT-CLIP optim_factory.py): the embeddings are layer 0
    (CLIP's ln_pre too), block i is layer i+1 (its own RPE table too, BEiT v2), everything on top
    (a shared rel_pos_bias, norm, fc_norm, head) is layer depth+1."""
    if name in ("cls_token", "pos_embed", "mask_token"):
        return 0
    if name.startswith(("patch_embed.", "norm_pre.")):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups_lrd(model, weight_decay, layer_decay):
    """AdamW groups whose lr is scaled by layer_decay ** (depth + 1 - layer_id): 1 for the head,
    layer_decay for the last block, ..., layer_decay ** (depth + 1) for the patch embedding
    (FT-CLIP §2.1 "LLRD", Tables 4-5)."""
    depth = len(model.blocks)

    def lr_scale_of(name):
        i = layer_id(name, depth)
        return i, layer_decay ** (depth + 1 - i)
    return engine.param_groups(model, weight_decay, lr_scale_of=lr_scale_of)


def init_head(head, std, scale):
    """MAE: trunc-normal(2e-5), bias 0. FT-CLIP / BEiT: trunc-normal(0.02) and PyTorch's default
    bias, both x 0.001. Either way the classifier starts near zero: equal logits, loss about ln K."""
    nn.init.trunc_normal_(head.weight, std=std)
    if scale == 1.0:
        nn.init.zeros_(head.bias)
    else:
        bound = head.weight.shape[1] ** -0.5                     # nn.Linear's default bias init
        nn.init.uniform_(head.bias, -bound, bound)
        with torch.no_grad():
            head.weight.mul_(scale)
            head.bias.mul_(scale)


def build_model(args, num_classes, load_clip=True):
    """The recipe's ViT with a K-way head, its weights (--pretrained CLIP or --init an encoder),
    and the frozen parts frozen."""
    switches = {k: getattr(args, k) for k in ("qv_bias", "rel_pos_bias", "layer_scale")}
    cfg, state, args.init_ema = init_config(args.arch, args.init, args.init_ema, switches,
                                            f"--model {args.model} builds ")
    # BEiT v2 / MaskDistill App. B: downstream, every block gets its own relative-position table
    cfg["shared_rel_pos_bias"] = args.shared_rel_pos_bias
    # MAE App. A.1: the fixed sin-cos table becomes a learned one for fine-tuning ("none" stays)
    cfg["pos_embed"] = "none" if cfg.get("pos_embed") == "none" else "learned"
    # FT-CLIP §2.1: no ln_post, no proj, a fresh head on the pooled patch tokens (MAE: the same)
    cfg.update(img_size=args.img_size or cfg.get("img_size", 224), num_classes=num_classes,
               global_pool=args.global_pool, drop_path=args.drop_path, proj_dim=0,
               mask_token=False)
    model = ViT(ViTConfig(**cfg))
    init_head(model.head, args.head_init_std, args.head_init_scale)
    if args.linprobe:   # MAE main_linprobe.py: BN without affine on the feature, then the head
        bn = nn.BatchNorm1d(model.num_features, affine=False, eps=1e-6)
        model.head = nn.Sequential(bn, model.head)
    given = f"--pretrained {args.pretrained}" if args.pretrained else f"--init {args.init}"
    load_start_weights(model, args.arch, args.pretrained if load_clip else "", state,
                       f"{given} does not fit --model {args.model} (arch {args.arch})")
    # Frozen = requires_grad False: no gradient, no optimizer state, no decay: bit-identical.
    if args.linprobe:
        for name, p in model.named_parameters():
            p.requires_grad_(name.startswith("head."))
    if args.freeze_patch_embed:   # NOTE(paper): FT-CLIP's code freezes conv1 at 224 (DeCLIP's)
        model.patch_embed.requires_grad_(False)
    if args.freeze_blocks:        # FT-CLIP Fig. 3 / MAE Fig. 9: tune the last depth - k blocks
        frozen = [model.patch_embed, model.norm_pre, model.rel_pos_bias, model.cls_token,
                  model.pos_embed, *model.blocks[:args.freeze_blocks]]
        for m in frozen:          # a shared RPE serves the frozen blocks too: fixed
            if m is not None:
                m.requires_grad_(False)
    return model


def build_optimizer(model, args):    # a linear probe trains the head only: one lr (main_linprobe)
    groups = param_groups_lrd(model, args.weight_decay, args.layer_decay)
    if args.optimizer == "lars":
        return engine.LARS(groups, lr=args.lr, weight_decay=args.weight_decay)
    if args.optimizer == "sgd":                          # MAE Table 10: "SGD works similarly"
        return torch.optim.SGD(groups, lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    return torch.optim.AdamW(groups, lr=args.lr, betas=args.betas)


def transforms_of(args, img):
    """(train, eval) transforms: FT-CLIP's RandAug m9, erasing 0.25, crops 8-100% (Tables 7, 9,
    14), or MAE's (App. A.1); a linear probe: crop + flip only ("regularization is in general
    harmful for linear probing", MAE App. A.1); eval: resize to img / crop_pct, center-crop."""
    mean, std = MEAN_STD[args.mean_std]
    kind = "linprobe" if args.linprobe else "finetune"
    train = build_transform(kind, img, mean, std, scale=args.crop_scale, aa=args.aa,
                            reprob=args.reprob)
    return train, build_transform("eval", img, mean, std, crop_pct=args.crop_pct)


def mixup_of(args, num_classes):
    """MAE Table 9: mixup 0.8 and cutmix 1.0 per batch (timm's Mixup, smoothing folded into its
    soft targets); FT-CLIP Table 6: none (None)."""
    if args.mixup <= 0 and args.cutmix <= 0:
        return None
    from timm.data import Mixup
    return Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, num_classes=num_classes,
                 label_smoothing=args.smoothing)


def classification_loss(logits, target, smoothing):
    """Cross-entropy with label smoothing (FT-CLIP Table 16: 0.1); with mixup / cutmix (MAE Table
    9) `target` is already soft (B, K), smoothing folded in: timm's SoftTargetCrossEntropy."""
    logits = logits.float()                                            # (B, K)
    if target.dim() == 2:
        return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()
    return F.cross_entropy(logits, target, label_smoothing=smoothing)


def evaluate_raw_and_ema(model, ema, loader, ctx):
    """FT-CLIP §2.1: the EMA evaluated beside the raw weights -> (acc1, acc5, acc1_ema, acc5_ema)."""
    acc1, acc5 = engine.evaluate(model, loader, ctx)
    acc1_ema, acc5_ema = engine.evaluate(ema.module, loader, ctx) if ema else (None, None)
    return acc1, acc5, acc1_ema, acc5_ema


def best_of(best, epoch, acc1, acc5, acc1_ema, acc5_ema):
    """The running best (raw and EMA) and the last epoch's numbers, as summary.json reports them;
    with an EMA the run selects by it (FT-CLIP's "Max accuracy": the best EMA top-1)."""
    if best["best_acc1"] is None or acc1 > best["best_acc1"]:
        best.update(best_acc1=acc1, best_acc5=acc5, best_acc1_epoch=epoch)
    ema_best = best["best_acc1_ema"]
    if acc1_ema is not None and (ema_best is None or acc1_ema > ema_best):
        best.update(best_acc1_ema=acc1_ema, best_acc5_ema=acc5_ema, best_acc1_ema_epoch=epoch)
    selected = "ema" if acc1_ema is not None else "raw"
    best.update(last_acc1=acc1, last_acc5=acc5, last_acc1_ema=acc1_ema, last_acc5_ema=acc5_ema,
                last_epoch=epoch, selected_by=selected,
                best_epoch=best["best_acc1_ema_epoch" if selected == "ema" else "best_acc1_epoch"])
    return best


def result_line(best):
    """The run's last line, named as summary.json: the last epoch's top-1 and the best one's, raw
    and EMA; the best EMA top-1 is FT-CLIP's headline (its checkpoint is checkpoint-best.pt)."""
    b = best
    line = (f"val top-1 (summary.json): last {b['last_acc1']:.2f} (epoch {b['last_epoch']}), best "
            f"{b['best_acc1']:.2f} (epoch {b['best_acc1_epoch']})")
    if b["best_acc1_ema"] is not None:
        line += (f"; EMA: last {b['last_acc1_ema']:.2f}, best {b['best_acc1_ema']:.2f} (epoch "
                 f"{b['best_acc1_ema_epoch']}; FT-CLIP's headline, checkpoint-best.pt)")
    return line


# ----------------------------------------------------------------------------- presets (the recipes)

# FT-CLIP Table 10 (B) and its code: lr absolute at its total batch 2048 (8 GPUs x 256), EMA 0.9998
# per step at 2048 (Table 3), no mixup / cutmix (Table 6), erasing 0.25 (Table 7), no drop path
# (Table 15), smoothing 0.1 (Table 16), CLIP mean/std, eval crop 224 of 224.
_FT_CLIP = dict(pretrained="openai", global_pool="ln_avg", head_init_std=0.02, head_init_scale=1e-3,
                freeze_patch_embed=True, optimizer="adamw", blr=6e-4, lr_batch=2048, batch_size=256,
                accum_iter=1, layer_decay=0.6, weight_decay=0.05, betas=(0.9, 0.999), epochs=50,
                warmup_epochs=10, min_lr=1e-6, clip_grad=None, aa="rand-m9-mstd0.5-inc1",
                smoothing=0.1, mixup=0.0, cutmix=0.0, drop_path=0.0, reprob=0.25,
                crop_scale=(0.08, 1.0), crop_pct=1.0, mean_std="clip", ema_decay=None,
                ema_base_decay=0.9998, linprobe=False)
# MAE FINETUNE.md, ViT-B (32 GPUs x 32 = 1024; 8 GPUs: --accum_iter 4): mean pool + fc_norm, head
# trunc-normal 2e-5, eval crop 0.875, ImageNet mean/std, no EMA. NOTE(paper): MAE Table 9 prints blr
# 1e-3, layer decay 0.75, drop path 0.1 (B/L) / 0.2 (H); the released FINETUNE.md (used) differs.
_MAE_FT = dict(_FT_CLIP, pretrained="", global_pool="avg", head_init_std=2e-5, head_init_scale=1.0,
               freeze_patch_embed=False, blr=5e-4, lr_batch=256, batch_size=32, layer_decay=0.65,
               epochs=100, warmup_epochs=5, mixup=0.8, cutmix=1.0, drop_path=0.1, crop_pct=0.875,
               mean_std="imagenet", ema_base_decay=0.0)
# MaskDistill App. C (BEiT's recipe): peak lr at batch 1024 (8 GPUs x 128), BEiT's head init x
# 0.001; the App. A student (q/v bias, RPE, layer scale, absolute positions), App. B: RPE per block.
_MASKDISTILL_FT = dict(_MAE_FT, lr_batch=1024, batch_size=128, head_init_std=0.02,
                       head_init_scale=1e-3, qv_bias=True, rel_pos_bias=True)
# MAE App. A.1 Table 10 / main_linprobe.py: the cls token after the final norm, BN + Linear, LARS,
# blr 0.1 at 16384 (32 GPUs x 512), wd 0, warmup 10, 90 epochs (L/H 50), crop + flip only.
_MAE_LINPROBE = dict(_MAE_FT, linprobe=True, global_pool="token", head_init_std=0.01,
                     optimizer="lars", blr=0.1, batch_size=512, layer_decay=1.0, weight_decay=0.0,
                     epochs=90, warmup_epochs=10, min_lr=0.0, aa="", reprob=0.0, mixup=0.0,
                     cutmix=0.0, smoothing=0.0, drop_path=0.0)
# NOTE(paper): ours, for a 2-core CPU (3 epochs at 32 px): a shape vanishes under RandomResizedCrop's
# 8% minimum area (crop 0.35-1); 3 epochs are too short for RandAug, erasing, drop path to pay off.
_MINI = dict(_MAE_FT, blr=2e-3, lr_batch=256, batch_size=128, layer_decay=0.75, epochs=3,
             warmup_epochs=1, aa="", reprob=0.0, mixup=0.0, cutmix=0.0, drop_path=0.0,
             crop_scale=(0.35, 1.0), crop_pct=1.0)

# MaskDistill App. C, one row per size: (peak lr, epochs, warmup, layer decay, drop path, layer
# scale). NOTE(paper): §4.1's text gives L layer decay 0.75; App. C's table (used here) gives 0.8.
_APP_C = {"vit_base_patch16": (5e-4, 100, 20, 0.65, 0.1, 0.1),
          "vit_large_patch16": (5e-4, 50, 5, 0.8, 0.2, 1e-5),
          "vit_huge_patch14": (2e-4, 30, 5, 0.85, 0.25, 1e-5)}

PRESETS = {
    "clip_b16": dict(_FT_CLIP, arch="clip_b16"),
    # FT-CLIP Table 10 (L): lr 4e-4, decay 0.65, warmup 5, 30 epochs; 8 GPUs x 64 x accum 4 = 2048
    "clip_l14": dict(_FT_CLIP, arch="clip_l14", blr=4e-4, layer_decay=0.65, warmup_epochs=5,
                     epochs=30, batch_size=64, accum_iter=4),
    # MAE FINETUNE.md: B as _MAE_FT; L, H: blr 1e-3, layer decay 0.75, 50 epochs (H: 64 GPUs x 16)
    "vit_base_patch16": dict(_MAE_FT, arch="vit_base_patch16"),
    "vit_large_patch16": dict(_MAE_FT, arch="vit_large_patch16", blr=1e-3, layer_decay=0.75,
                              epochs=50, drop_path=0.2),
    "vit_huge_patch14": dict(_MAE_FT, arch="vit_huge_patch14", blr=1e-3, layer_decay=0.75,
                             epochs=50, drop_path=0.3, batch_size=16),
    **{f"maskdistill_{arch}": dict(_MASKDISTILL_FT, arch=arch, **dict(zip(
        ("blr", "epochs", "warmup_epochs", "layer_decay", "drop_path", "layer_scale"), row)))
       for arch, row in _APP_C.items()},
    "vit_base_patch16_linprobe": dict(_MAE_LINPROBE, arch="vit_base_patch16"),
    "vit_large_patch16_linprobe": dict(_MAE_LINPROBE, arch="vit_large_patch16", epochs=50),
    "vit_huge_patch14_linprobe": dict(_MAE_LINPROBE, arch="vit_huge_patch14", epochs=50),
    # FT-CLIP's 384 / 336 runs (86.6, 88.3) as its scripts: the patch conv trains, positions resized
    # 14/16 -> 24; B: 7e-4 at 8 GPUs x 64 x accum 4 = 2048; L: 6e-4 at 24 x 20 x 4 = 1920 (its log).
    "clip_b16_384": dict(_FT_CLIP, arch="clip_b16", img_size=384, freeze_patch_embed=False,
                         blr=7e-4, batch_size=64, accum_iter=4),
    "clip_l14_336": dict(_FT_CLIP, arch="clip_l14", img_size=336, freeze_patch_embed=False,
                         blr=6e-4, lr_batch=1920, batch_size=20, accum_iter=4, layer_decay=0.65,
                         warmup_epochs=5, epochs=30),
    "vit_mini": dict(_MINI, arch="vit_mini"),
    # NOTE(paper): LARS steps the head by lr x 0.001 of its norm; MAE's blr 0.1 is for ~7k steps,
    # 390 here
    "vit_mini_linprobe": dict(_MAE_LINPROBE, arch="vit_mini", blr=10.0, batch_size=256, epochs=10,
                              warmup_epochs=1, crop_scale=(0.35, 1.0), crop_pct=1.0, save_every=5),
    # the test suite's (tiny, seconds): EMA 0.9 at their batch (= lr_batch): a few steps move it
    "vit_test": dict(_MINI, arch="vit_test", blr=1e-3, lr_batch=16, batch_size=16, epochs=2,
                     ema_base_decay=0.9, num_workers=0, save_every=1),
    "vit_test_linprobe": dict(_MAE_LINPROBE, arch="vit_test", blr=0.1, batch_size=16, epochs=2,
                              warmup_epochs=1, num_workers=0),
    "clip_test": dict(_FT_CLIP, arch="clip_test", pretrained="", blr=3e-3, lr_batch=32,
                      batch_size=32, epochs=20, warmup_epochs=1, layer_decay=0.75, aa="",
                      reprob=0.0, crop_scale=(0.35, 1.0), ema_base_decay=0.9, num_workers=0),
}


# ----------------------------------------------------------------------------- arguments

def get_args(argv=None):
    p = engine.common_parser("Fine-tune / linear-probe a ViT: FT-CLIP (Dong et al. 2022), MAE and "
                             "MaskDistill protocols. Export for timm: python weights.py export CKPT")
    g = p.add_argument_group("model and weights (FT-CLIP §2.1; MAE App. A.1)")
    g.add_argument("--arch", default="clip_b16", help="a vit.py architecture")
    g.add_argument("--img_size", type=int, default=None, help="resolution; positions are resized")
    g.add_argument("--pretrained", default="openai", help="CLIP weights: an open_clip tag "
                   "(downloads once), a local file (state dict or OpenAI's .pt), '' = random init")
    g.add_argument("--init", default="", help="encoder.pt, MAE's file or a finetune checkpoint")
    g.add_argument("--init_ema", action=argparse.BooleanOptionalAction, default=None, help="--init "
                   "a checkpoint's EMA (None: if its run selected by EMA, as checkpoint-best.pt)")
    g.add_argument("--global_pool", default="ln_avg", choices=["ln_avg", "avg", "token"],
                   help="ln_avg: LN per patch, then mean (FT-CLIP); avg: mean, then LN (MAE); cls")
    g.add_argument("--head_init_std", type=float, default=0.02, help="head trunc-normal std")
    g.add_argument("--head_init_scale", type=float, default=1e-3, help="head x this (FT-CLIP 1e-3)")
    g.add_argument("--drop_path", type=float, default=0.0, help="stochastic depth (FT-CLIP: 0)")
    on_off = dict(action=argparse.BooleanOptionalAction)
    g.add_argument("--freeze_patch_embed", **on_off, default=True, help="FT-CLIP's code, at 224")
    g.add_argument("--qv_bias", **on_off, default=None, help="BEiT q/v bias (None: the arch's)")
    g.add_argument("--rel_pos_bias", **on_off, default=None, help="MaskDistill's (None: arch's)")
    g.add_argument("--shared_rel_pos_bias", **on_off, default=False, help="one table (App. B: no)")
    g.add_argument("--layer_scale", type=float, default=None, help="layer scale (App. A)")
    g = p.add_argument_group("layer-wise lr decay, optimizer (FT-CLIP Tables 4, 5, 10; MAE 9, 10)")
    g.add_argument("--layer_decay", type=float, default=0.6, help="lr x decay ** (depth + 1 - id)")
    g.add_argument("--optimizer", default="adamw", choices=["adamw", "lars", "sgd"])
    g = p.add_argument_group("augmentation and regularization (FT-CLIP Tables 6-9, 14, 16; MAE 9)")
    g.add_argument("--aa", default="rand-m9-mstd0.5-inc1", help="timm RandAugment ('' = off)")
    g.add_argument("--reprob", type=float, default=0.25, help="RandomErasing probability (Table 7)")
    g.add_argument("--mixup", type=float, default=0.0, help="mixup alpha (FT-CLIP: 0; MAE: 0.8)")
    g.add_argument("--cutmix", type=float, default=0.0, help="cutmix alpha (FT-CLIP: 0; MAE: 1.0)")
    g.add_argument("--smoothing", type=float, default=0.1, help="label smoothing (Table 16)")
    g.add_argument("--crop_scale", type=float, nargs=2, default=(0.08, 1.0), metavar=("LO", "HI"),
                   help="RandomResizedCrop area range (Table 14)")
    g.add_argument("--crop_pct", type=float, default=1.0, help="eval crop (FT-CLIP 1.0; MAE 0.875)")
    g.add_argument("--mean_std", default="clip", choices=list(MEAN_STD), help="input normalization")
    add_ema_args(p)
    g = p.add_argument_group("protocols (MAE §4.3, App. A.1; FT-CLIP Fig. 3)")
    g.add_argument("--linprobe", **on_off, default=False, help="frozen encoder, BN + Linear on cls")
    g.add_argument("--freeze_blocks", type=int, default=0, help="freeze the embeddings + k blocks")
    g.add_argument("--train_fraction", type=float, default=1.0, help="class-stratified label share")
    g.add_argument("--label_seed", type=int, default=None, help="its draw (default: --seed)")
    g.add_argument("--eval_only", action="store_true", help="evaluate --resume PATH or --init")
    g.add_argument("--eval_every", type=int, default=1, help="evaluate every N epochs + the last")
    return engine.parse_args(p, PRESETS, argv, script="finetune", resolve=resolve_args)


def resolve_args(args, parser):
    if args.arch not in VIT_PRESETS:
        parser.error(f"unknown --arch '{args.arch}'; choose one of: {', '.join(VIT_PRESETS)}")
    if args.pretrained and args.init:
        parser.error("give --pretrained (CLIP) or --init (an encoder), not both; --pretrained '' "
                     "clears it")
    if args.pretrained and not VIT_PRESETS[args.arch].get("norm_pre"):
        parser.error(f"--pretrained loads CLIP weights into a clip_* arch; for --arch {args.arch} "
                     f"use --init")
    if args.linprobe and args.global_pool != "token":   # MAE #186: a pooled head's fc_norm would be
        parser.error("--linprobe uses the cls token after the final norm: add --global_pool token")
    if (args.mixup > 0 or args.cutmix > 0) and args.batch_size % 2:
        parser.error("mixup/cutmix pair each image with the batch flipped: --batch_size must be "
                     "even")
    if not 0 <= args.freeze_blocks <= VIT_PRESETS[args.arch].get("depth", 12):
        parser.error(f"--freeze_blocks {args.freeze_blocks} is not within 0..depth of {args.arch}")
    if args.output_dir is None and args.init:      # two fine-tunings of one --model: two folders
        args.output_dir = engine.folder_from(args.init, f"finetune_{args.model}")
    args.crop_scale = tuple(args.crop_scale)
    arch = ViTConfig(**VIT_PRESETS[args.arch])
    engine.check_img_size(parser, args.img_size or arch.img_size, arch.patch_size)
    resolve_ema_decay(args, parser)                 # the decay per step at this run's batch


# ----------------------------------------------------------------------------- training script

def main(argv=None):
    args = get_args(sys.argv[1:] if argv is None else list(argv))
    ctx = engine.setup(args)
    img = args.img_size or VIT_PRESETS[args.arch].get("img_size", 224)
    train_tf, eval_tf = transforms_of(args, img)
    val_set = dataset_from_args(args, "val", eval_tf, img)
    train_set = None if args.eval_only else dataset_from_args(args, "train", train_tf, img)
    if train_set is not None and args.train_fraction < 1:
        seed = args.seed if args.label_seed is None else args.label_seed
        train_set = subset_fraction(train_set, args.train_fraction, seed)
    num_classes = len(val_set.classes)

    # a checkpoint to resume from replaces every weight: then CLIP's are not fetched
    resuming = bool(args.resume) and (args.resume != "auto" or bool(engine.list_checkpoints(
        args.output_dir)))
    model = build_model(args, num_classes, load_clip=not resuming).to(ctx.device)
    args.vit_config = asdict(model.cfg)        # in every checkpoint's args: export and --init use it
    optimizer = build_optimizer(model, args)
    # DDP broadcasts rank 0's weights (each rank drew its own head): copy the EMA after that
    train_model = engine.wrap_model(model, ctx, args)
    ema = ModelEma(model, args.ema_decay) if args.ema_decay > 0 else None   # the start's weights
    scaler = engine.make_scaler(ctx)                    # fp16 only, else None
    start_epoch, extra = engine.resume(args, model, optimizer, scaler=scaler, ema=ema)
    val_loader = engine.eval_loader(val_set, args, ctx)
    n_all = sum(p.numel() for p in model.parameters())
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    how = (", linear probe" if args.linprobe else "") + (f", {args.freeze_blocks} blocks frozen"
                                                        if args.freeze_blocks else "")
    engine.print0(f"[finetune] {args.model} (arch {args.arch} @ {img}px, pool {args.global_pool}"
                  f"{how}): {n_all / 1e6:.2f} M params, {n_train / 1e6:.3f} M trainable; "
                  f"{num_classes} classes; weights: {engine.weights_line(args, start_epoch)}")

    if args.eval_only:                                # the EMA only exists in a checkpoint (--resume)
        acc = evaluate_raw_and_ema(model, ema if args.resume else None, val_loader, ctx)
        res = {k: v for k, v in zip(["acc1", "acc5", "acc1_ema", "acc5_ema"], acc) if v is not None}
        engine.print0(f"[finetune] eval on {len(val_set)} images: {res}")
        engine.write_json(ctx, os.path.join(args.output_dir, "eval.json"), res)
        engine.finish(args, ctx, ["eval.json"])
        return model

    loader, steps_per_epoch = engine.train_loader(train_set, args, ctx)
    b = args.eff_batch_size
    says = describe_decay(args.ema_decay, args.ema_scaled, args.ema_base_decay, b, args.lr_batch)
    engine.print0(f"[finetune] recipe: lr {args.blr:g} at batch {args.lr_batch} -> {args.lr:.3g} "
                  f"at this run's batch {b}; layer decay {args.layer_decay}; {says}; "
                  f"{len(train_set)} train / {len(val_set)} val images, {steps_per_epoch} "
                  f"steps/epoch")
    log = engine.MetricsLog(args.output_dir, ctx)
    mixup_fn = mixup_of(args, num_classes)

    def loss_fn(m, batch):
        imgs, target = (t.to(ctx.device, non_blocking=True) for t in batch[:2])
        if mixup_fn is not None:
            imgs, target = mixup_fn(imgs, target)       # target: (B, K) soft labels
        return classification_loss(m(imgs), target, args.smoothing), {}

    keys = ["best_acc1", "best_acc5", "best_acc1_epoch", "best_acc1_ema", "best_acc5_ema",
            "best_acc1_ema_epoch"]
    best = {**dict.fromkeys(keys), **extra}     # in every checkpoint: --resume auto continues them
    for epoch in range(start_epoch, args.epochs):
        loss = engine.train_one_epoch(train_model, loss_fn, loader, optimizer, epoch, args, ctx,
                                      log, model=model, ema=ema, scaler=scaler)
        final = epoch + 1 == args.epochs or 0 < args.max_steps <= (epoch + 1) * steps_per_epoch
        evaluated = (epoch + 1) % args.eval_every == 0 or final          # --eval_every N, the last
        if evaluated:
            acc = evaluate_raw_and_ema(model, ema, val_loader, ctx)
            best_of(best, epoch, *acc)
            ema_part = f" | EMA top-1 {acc[2]:.2f} {acc[3]:.2f}" if ema else ""
            engine.print0(f"[finetune] epoch {epoch}: train loss {loss:.4f} | val top-1 "
                          f"{acc[0]:.2f} top-5 {acc[1]:.2f}{ema_part}")
        ckpt = dict(scaler=scaler, ema=ema, extra=best)
        step, _, done = engine.end_of_epoch(args, ctx, epoch, steps_per_epoch, model, optimizer,
                                            **ckpt)
        if evaluated:
            log.log(epoch=epoch, step=step, **dict(zip(["val_acc1", "val_acc5", "val_acc1_ema",
                                                         "val_acc5_ema"], acc)))
        if evaluated and best["best_epoch"] == epoch:   # FT-CLIP's "Max accuracy": best EMA top-1
            engine.save_checkpoint(args, ctx, epoch, model, optimizer, step=step,
                                   name="checkpoint-best.pt", **ckpt)
        if done:
            break
    engine.write_json(ctx, os.path.join(args.output_dir, "summary.json"), best)
    if best["best_acc1"] is not None:
        engine.print0(f"[finetune] {result_line(best)}")
    engine.finish(args, ctx, ["summary.json", "checkpoint-best.pt", "metrics.jsonl"])
    return model


if __name__ == "__main__":
    main()

"""Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022, arXiv 2111.06377), in one file.

  §3 Masking          random 75% of the patches removed (masking.random_masking)
  §3 MAE encoder      vit.py's ViT on the visible patches (+ cls) only: no mask tokens
  §3 MAE decoder      Linear to 512-d, one shared learned mask token, fixed sin-cos positions,
                      8 blocks x 16 heads, a Linear to the pixels of each patch
  §3 target / loss    the pixels of each patch (per-patch normalized with --norm_pix_loss),
                      MSE on the removed patches only
  App. A.1            xavier-uniform init, lr = blr x batch / 256, AdamW betas (0.9, 0.95), Table 8;
                      weight decay on every >= 2-D parameter, cls / mask tokens included
  Table 1(c)          --encoder_mask_tokens: the encoder sees all patches with mask tokens (slow);
                      `mae_flops` counts both (3.3x for ViT-L)
  Fig. 2              reconstructions: each epoch's recon_epochNNN.png, or --visualize your photos

Run (CPU quick start, built-in data; writes runs/mae_mae_vit_mini/ with checkpoint-*.pt,
encoder.pt, recon_epochNNN.png):
    python mae.py --model mae_vit_mini
Real run (MAE PRETRAIN.md: 64 GPUs x 64 = 4096; on 8 GPUs add --accum_iter 8):
    torchrun --nproc_per_node=8 mae.py --model mae_vit_large_patch16 --data /path/to/imagenet \\
        --batch_size 64 --accum_iter 8
MAE Fig. 2 on your own photos, with the official demo's weights (or any file --init takes):
    python mae.py --visualize photo.jpg [more.jpg ...] --init mae_visualize_vit_large.pth
Speed of Table 1c / Table 2 on this machine: python experiments/bench.py --sections 2

Shape legend: B batch, C channels, P patch, N patches, N_vis visible, D encoder width, Dd decoder width.
"""
import argparse
import os
import sys
from dataclasses import replace

import torch
import torch.nn as nn

import engine
from data import IMAGENET_MEAN, IMAGENET_STD, DataError, build_dataset, build_transform
from masking import random_masking
from vit import PRESETS as VIT_PRESETS
from vit import Block, ViT, ViTConfig, sincos_pos_embed_2d
from weights import load_mae_checkpoint


def patchify(imgs, p):
    """(B, C, H, W) -> (B, N, P*P*C): patches row-major, pixels channel-last in a patch (MAE's)."""
    B, C, H, W = imgs.shape
    h, w = H // p, W // p
    x = imgs.reshape(B, C, h, p, w, p).permute(0, 2, 4, 3, 5, 1)          # (B, h, w, P, P, C)
    return x.reshape(B, h * w, p * p * C)


def unpatchify(x, p, channels=3):
    """(B, N, P*P*C) -> (B, C, H, W); the exact inverse of patchify for a square grid."""
    B, N, _ = x.shape
    h = w = int(N ** 0.5)
    x = x.reshape(B, h, w, p, p, channels).permute(0, 5, 1, 3, 2, 4)       # (B, C, h, P, w, P)
    return x.reshape(B, channels, h * p, w * p)


class MaskedAutoencoder(nn.Module):
    """MAE §3: an asymmetric encoder-decoder.
    `model(imgs, mask_ratio)` -> (loss, pred (B, N, P*P*C), mask (B, N) bool, True = removed)."""

    def __init__(self, encoder_cfg, decoder_dim=512, decoder_depth=8, decoder_heads=16,
                 norm_pix_loss=True, encoder_mask_tokens=False):
        super().__init__()
        # App. A.1: sin-cos positions in encoder and decoder; no drop path in pre-training.
        self.encoder = ViT(replace(encoder_cfg, pos_embed="sincos", num_classes=0, global_pool="token",
                                   drop_path=0.0, mask_token=encoder_mask_tokens))
        self.norm_pix_loss, self.encoder_mask_tokens = norm_pix_loss, encoder_mask_tokens
        self.patch_size, self.in_chans = encoder_cfg.patch_size, encoder_cfg.in_chans
        grid = self.encoder.patch_embed.grid_size
        D, N, Dd = encoder_cfg.embed_dim, self.encoder.patch_embed.num_patches, decoder_dim
        # ---- decoder (§3 "MAE decoder"): pre-training only, ~10% of the encoder's compute per token
        self.decoder_embed = nn.Linear(D, Dd)                           # encoder width -> decoder's
        # One shared, learned [M]. With encoder_mask_tokens the encoder's own [M] fills the masked
        # slots, so this one would be unused: not created (strict DDP needs every parameter used).
        self.mask_token = None if encoder_mask_tokens else nn.Parameter(torch.zeros(1, 1, Dd))
        pos = sincos_pos_embed_2d(Dd, *grid).unsqueeze(0)               # (1, 1+N, Dd), fixed
        self.decoder_pos_embed = nn.Parameter(pos, requires_grad=False)
        dec_cfg = replace(encoder_cfg, embed_dim=Dd, num_heads=decoder_heads, mlp_dim=4 * Dd, drop_path=0.0)
        self.decoder_blocks = nn.ModuleList(Block(Dd, decoder_heads, 4 * Dd, dec_cfg)
                                            for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(Dd, eps=encoder_cfg.norm_eps)
        self.decoder_pred = nn.Linear(Dd, self.patch_size ** 2 * self.in_chans)   # one patch's pixels
        self.initialize_weights(N)

    def initialize_weights(self, N):
        """App. A.1 / models_mae.py: xavier_uniform for every Linear (and the patch conv viewed as
        one), zero biases, tokens N(0, 0.02), sin-cos position tables (set in ViT / __init__)."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        conv = self.encoder.patch_embed.proj
        conv.reset_parameters()                               # MAE keeps PyTorch's conv bias init
        nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))   # as a (D, C*P*P) Linear
        for t in [self.encoder.cls_token, self.mask_token, self.encoder.mask_token]:
            if t is not None:
                nn.init.normal_(t, std=0.02)

    def no_weight_decay(self):
        """Nothing by name: main_pretrain.py builds AdamW groups with timm 0.3.2's
        `add_weight_decay(model, wd)` and no skip list, so only 1-D parameters and biases are exempt
        (engine.param_groups does that) and cls_token and mask_token, (1, 1, D), ARE decayed. The
        sin-cos tables are frozen, hence in no group. Fine-tuning keeps timm's {pos_embed, cls_token}
        exemption (vit.ViT.no_weight_decay), as main_finetune.py does."""
        return set()

    def forward_encoder(self, imgs, mask_ratio):
        """§3 encoder: embed (positions added), random_masking on torch's global RNG, cls + visible
        tokens through the blocks and the final norm -> (latent (B, 1+N_vis, D), mask, ids_restore)."""
        x = self.encoder.embed_patches(imgs)                                # (B, N, D), positions added
        x_vis, mask, ids_restore = random_masking(x, mask_ratio)           # (B, N_vis, D), (B, N) x 2
        if self.encoder_mask_tokens:                                        # Table 1c "encoder w/ [M]"
            return self.encoder.forward_features(imgs, mask), mask, ids_restore     # (B, 1+N, D)
        x = self.encoder.forward_blocks(self.encoder.prepend_cls(x_vis))   # (B, 1+N_vis, D)
        return x, mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)                                          # (B, 1+N_vis, Dd)
        B, N = ids_restore.shape
        if not self.encoder_mask_tokens:
            # §3 "Simple implementation": append mask tokens, unshuffle to align with the targets
            masked = self.mask_token.to(x.dtype).expand(B, N + 1 - x.shape[1], -1)
            tokens = torch.cat([x[:, 1:], masked], dim=1)                  # (B, N, Dd), shuffled
            index = ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1])
            tokens = torch.gather(tokens, 1, index)                        # (B, N, Dd), patch order
            x = torch.cat([x[:, :1], tokens], dim=1)                       # (B, 1+N, Dd)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]              # (B, N, P*P*C), no cls

    def target(self, imgs):
        """§3 "Reconstruction target": the patch pixels; with norm_pix_loss each patch normalized by
        its own mean and (unbiased) variance, eps 1e-6 inside the sqrt, as in models_mae.py."""
        t = patchify(imgs, self.patch_size)                                # (B, N, P*P*C)
        if self.norm_pix_loss:
            mean, var = t.mean(dim=-1, keepdim=True), t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1e-6) ** 0.5
        return t

    def forward_loss(self, imgs, pred, mask):
        """MSE per patch, averaged over removed patches only (§3, as BERT): sum(loss * mask) / sum(mask)."""
        loss = ((pred.float() - self.target(imgs.float())) ** 2).mean(dim=-1)    # (B, N)
        m = mask.float()
        return (loss * m).sum() / m.sum()

    def forward(self, imgs, mask_ratio=0.75):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask


# ----------------------------------------------------------------------------- presets

MAE_PRESETS = {   # encoder = a vit.py preset; decoder per App. A.1 (512-d, 8 blocks, 16 heads)
    "mae_vit_base_patch16": dict(encoder="vit_base_patch16", decoder_dim=512, decoder_depth=8,
                                 decoder_heads=16),
    "mae_vit_large_patch16": dict(encoder="vit_large_patch16", decoder_dim=512, decoder_depth=8,
                                  decoder_heads=16),
    "mae_vit_huge_patch14": dict(encoder="vit_huge_patch14", decoder_dim=512, decoder_depth=8,
                                 decoder_heads=16),
    # 32 px, CPU (Table 1a: one decoder block suffices for fine-tuning)
    "mae_vit_mini": dict(encoder="vit_mini", decoder_dim=128, decoder_depth=1, decoder_heads=4),
    "mae_vit_test": dict(encoder="vit_test", decoder_dim=32, decoder_depth=1, decoder_heads=2),  # tests
}


def create_mae(name, norm_pix_loss=True, encoder_mask_tokens=False, **overrides):
    """`create_mae("mae_vit_base_patch16", encoder_mask_tokens=True)`; other overrides go to the
    decoder (decoder_dim / depth / heads) or to the encoder's ViTConfig (e.g. img_size)."""
    if name not in MAE_PRESETS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(MAE_PRESETS)}")
    spec = dict(MAE_PRESETS[name])
    dec = {k: overrides.pop(k, spec[k]) for k in ["decoder_dim", "decoder_depth", "decoder_heads"]}
    cfg = ViTConfig(**{**VIT_PRESETS[spec["encoder"]], **overrides})
    return MaskedAutoencoder(cfg, norm_pix_loss=norm_pix_loss, encoder_mask_tokens=encoder_mask_tokens,
                             **dec)


# Table 8 / PRETRAIN.md: blr 1.5e-4 (x batch / 256), wd 0.05, betas (0.9, 0.95), batch 4096 (64 per
# GPU on 64 GPUs), warmup 40, 800 epochs (1600 for the released weights), min lr 0, no clipping.
_MAE_RECIPE = dict(epochs=800, warmup_epochs=40, blr=1.5e-4, lr_batch=256, weight_decay=0.05,
                   betas=(0.9, 0.95), batch_size=64, min_lr=0.0, clip_grad=None, mask_ratio=0.75,
                   norm_pix_loss=True, save_init=False)
PRESETS = {name: dict(_MAE_RECIPE) for name in MAE_PRESETS}
# NOTE(paper): the laptop presets are ours: a short schedule needs a higher base lr. The mini one keeps
# its encoder at step 0 too (encoder_init.pt), the fair "from scratch" for its fine-tuning.
PRESETS["mae_vit_mini"].update(epochs=10, warmup_epochs=1, blr=1.5e-3, batch_size=128, save_every=5,
                               save_init=True)
PRESETS["mae_vit_test"].update(epochs=2, warmup_epochs=1, blr=1.5e-3, batch_size=16, num_workers=0)


def mae_flops(name, encoder_mask_tokens, mask_ratio=0.75, img_size=None):
    """Table 1c: forward multiply-adds (G) of one pre-training step on one image, the encoder on the
    visible patches only or on all of them with [M]; counted on the meta device (no memory)."""
    from torch.utils.flop_counter import FlopCounterMode
    kw = {"img_size": img_size} if img_size else {}
    with torch.device("meta"):
        model = create_mae(name, encoder_mask_tokens=encoder_mask_tokens, **kw)
        x = torch.empty(1, 3, model.encoder.cfg.img_size, model.encoder.cfg.img_size)
    with FlopCounterMode(display=False) as counter:
        model(x, mask_ratio)
    return counter.get_total_flops() / 2 / 1e9      # FlopCounterMode counts 2 per multiply-add


# ----------------------------------------------------------------------------- reconstructions (Fig. 2)

@torch.no_grad()
def reconstruction_rows(model, imgs, mask_ratio, mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=0):
    """The rows of the reconstruction picture, [(label, (B, C, H, W) in [0, 1])], and the mask (B, N).
    Removed patches of the masked input are 0 in normalized space: the dataset-mean grey (as the
    official demo). Pixel target: the reconstruction of every patch (Fig. 2) | with the visible
    patches pasted back. norm_pix_loss: the prediction is per-patch normalized (mean 0, var 1), so
    it needs a mean / std to be seen:
      - the visible patches' average mean/std (what the model saw; nothing of a removed patch), and
      - each removed patch's TRUE mean/std: the ground truth leaks (brightness and contrast of every
        removed patch come from the answer; how MAE users usually show it, mae#153), labelled so."""
    was_training = model.training
    model.eval()
    rng = torch.get_rng_state()
    torch.manual_seed(seed)                                      # the same masks at every epoch
    _, pred, mask = model(imgs, mask_ratio)
    torch.set_rng_state(rng)
    model.train(was_training)
    p, C = model.patch_size, model.in_chans
    orig, pred = patchify(imgs, p).float(), pred.float()         # (B, N, P*P*C) each, normalized
    m = mask.unsqueeze(-1).float()                               # (B, N, 1), 1 = removed
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def to_img(t):                                               # (B, N, P*P*C) -> (B, C, H, W)
        return (unpatchify(t, p, C).cpu() * std_t + mean_t).clamp(0, 1)

    def pasted(t):                                               # the visible patches from the input
        return orig * (1 - m) + t * m
    rows = [("masked input (removed = dataset mean)", to_img(orig * (1 - m)))]
    if not model.norm_pix_loss:
        rows += [("reconstruction, every patch (MAE Fig. 2)", to_img(pred)),
                 ("reconstruction + visible patches", to_img(pasted(pred)))]
    else:
        mu, sd = orig.mean(-1, keepdim=True), (orig.var(-1, keepdim=True) + 1e-6) ** 0.5   # (B, N, 1)
        vis = 1 - m
        n_vis = vis.sum(1, keepdim=True).clamp(min=1)
        mu_v = (mu * vis).sum(1, keepdim=True) / n_vis                                     # (B, 1, 1)
        sd_v = (sd * vis).sum(1, keepdim=True) / n_vis
        rows += [("prediction + visible; visible patches' mean/std", to_img(pasted(pred * sd_v + mu_v))),
                 ("prediction + visible; TRUE patch mean/std (GT leak)", to_img(pasted(pred * sd + mu)))]
    return rows + [("original", to_img(orig))], mask


def save_reconstructions(model, imgs, path, mask_ratio, mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=0):
    """PNG: one column per image, the rows of `reconstruction_rows` each under its label; small
    images are upscaled (nearest) to at least 128 px so that a 32 px patch grid can be read."""
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid
    rows, _ = reconstruction_rows(model, imgs, mask_ratio, mean, std, seed)
    scale = max(1, -(-128 // imgs.shape[-1]))                     # ceil(128 / H): 4x at 32 px
    font = ImageFont.load_default(size=14)
    strips = []
    for label, x in rows:
        grid = make_grid(x, nrow=len(x), padding=1)                       # (C, h, w) in [0, 1]
        im = Image.fromarray(grid.mul(255).add_(0.5).clamp_(0, 255).byte().permute(1, 2, 0).numpy())
        strips.append((label, im.resize((im.width * scale, im.height * scale), Image.NEAREST)))
    text_h = 22
    width = max(max(im.width for _, im in strips), 8 * max(len(label) for label, _ in strips))
    canvas = Image.new("RGB", (width, sum(text_h + im.height for _, im in strips)), "white")
    draw, y = ImageDraw.Draw(canvas), 0
    for label, im in strips:
        draw.text((4, y + 3), label, fill="black", font=font)
        canvas.paste(im, (0, y + text_h))
        y += text_h + im.height
    canvas.save(path)


def visualize(argv):
    """python mae.py --visualize IMG [IMG ...] --init FILE [--model M] [--out PNG]: MAE Fig. 2 on your
    own images, as the official demo notebook: each resized to the model's size, ImageNet-normalized,
    75% of its patches removed, reconstructed. FILE: anything --init takes; a mae.py checkpoint or an
    official main_pretrain.py one says its model and target; the released mae_visualize_*.pth (ViT-L)
    do not: then --model (default mae_vit_large_patch16), the plain-pixel target they were trained on."""
    p = argparse.ArgumentParser(prog="mae.py --visualize", description=visualize.__doc__)
    p.add_argument("--visualize", nargs="+", required=True, metavar="IMG", help="image files")
    p.add_argument("--init", required=True, help="MAE weights (encoder + decoder)")
    p.add_argument("--model", default=None, help=f"one of {', '.join(MAE_PRESETS)} (default: the file's, "
                   f"else mae_vit_large_patch16)")
    p.add_argument("--norm_pix_loss", action=argparse.BooleanOptionalAction, default=None,
                   help="the target the weights were trained with (default: the file's, else pixels)")
    p.add_argument("--mask_ratio", type=float, default=0.75)
    p.add_argument("--seed", type=int, default=0, help="which patches are removed")
    p.add_argument("--out", default="mae_visualize.png")
    a = p.parse_args(argv)
    from PIL import Image
    ckpt = engine.load_file(a.init, "--init")
    saved = ckpt.get("args") or {} if isinstance(ckpt, dict) else {}
    saved = vars(saved) if isinstance(saved, argparse.Namespace) else saved   # official: a Namespace
    name = a.model or saved.get("model", "mae_vit_large_patch16")
    norm_pix = a.norm_pix_loss if a.norm_pix_loss is not None else bool(saved.get("norm_pix_loss", False))
    if name not in MAE_PRESETS:
        p.error(f"--model {name}: choose one of {', '.join(MAE_PRESETS)}")
    model = create_mae(name, norm_pix_loss=norm_pix)
    load_mae_checkpoint(model, ckpt, a.init)
    tf = build_transform("eval", model.encoder.cfg.img_size, crop_pct=1.0)
    imgs = []
    for f in a.visualize:
        try:
            img = Image.open(f).convert("RGB")
        except OSError as e:
            raise SystemExit(f"--visualize {f}: not a readable image ({e})") from None
        size = model.encoder.cfg.img_size                     # the official demo resizes, no crop
        imgs.append(tf(img.resize((size, size), Image.BICUBIC)))
    save_reconstructions(model, torch.stack(imgs), a.out, a.mask_ratio, seed=a.seed)
    print(f"[mae] {name} ({'norm-pix' if norm_pix else 'pixel'} target) from {a.init}: "
          f"{len(imgs)} image(s), {a.mask_ratio:.0%} removed -> {a.out}")
    return a.out


# ----------------------------------------------------------------------------- training script

def get_args(argv=None):
    p = engine.common_parser("MAE pre-training (He et al. 2022).")
    g = p.add_argument_group("MAE (§3, App. A.1)")
    g.add_argument("--mask_ratio", type=float, default=0.75, help="fraction of patches removed (Fig. 5)")
    g.add_argument("--norm_pix_loss", action=argparse.BooleanOptionalAction, default=True,
                   help="per-patch normalized pixel target (Table 1d)")
    g.add_argument("--encoder_mask_tokens", action="store_true",
                   help="Table 1c ablation: the encoder runs on all tokens with [M]")
    g.add_argument("--img_size", type=int, default=None, help="input resolution (default: the encoder's)")
    g.add_argument("--init", default="", help="start from these encoder + decoder weights: a mae.py "
                   "checkpoint-*.pt or an official MAE full checkpoint (mae_visualize_vit_*.pth: pixel "
                   "target, add --no-norm_pix_loss)")
    g.add_argument("--save_init", action=argparse.BooleanOptionalAction, default=False,
                   help="also save the encoder at step 0 (encoder_init.pt): the same network and init "
                   "without pre-training, a fair from-scratch baseline for finetune.py --init")
    return engine.parse_args(p, PRESETS, argv, script="mae", resolve=resolve_args)


def resolve_args(args, parser):
    """Parse-time checks that need the encoder's patch grid: whole patches, and a ratio that leaves
    patches both to see and to reconstruct (random_masking keeps int(N x (1 - ratio)))."""
    cfg = ViTConfig(**VIT_PRESETS[MAE_PRESETS[args.model]["encoder"]])
    size = args.img_size or cfg.img_size
    engine.check_img_size(parser, size, cfg.patch_size)
    n = (size // cfg.patch_size) ** 2
    if not 0 < args.mask_ratio < 1 or int(n * (1 - args.mask_ratio)) < 1:
        parser.error(f"--mask_ratio {args.mask_ratio} must be in (0, 1) and keep at least one of the {n} "
                     f"patches visible (MAE: 0.75)")
    if args.init and not os.path.isfile(args.init):
        parser.error(f"--init {args.init}: no such file (a mae.py checkpoint-*.pt or an official MAE "
                     f"full checkpoint)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--visualize" or a.startswith("--visualize=") for a in argv):
        return visualize(argv)
    args = get_args(argv)
    ctx = engine.setup(args)
    size = {"img_size": args.img_size} if args.img_size else {}
    model = create_mae(args.model, norm_pix_loss=args.norm_pix_loss,
                       encoder_mask_tokens=args.encoder_mask_tokens, **size).to(ctx.device)
    if args.init:   # before --resume, which (when given) replaces these weights
        n = load_mae_checkpoint(model, engine.load_file(args.init, "--init"), args.init)
        engine.print0(f"[mae] --init {args.init}: {n} tensors loaded")
    if args.save_init and ctx.is_master and not args.resume:
        engine.save_encoder(os.path.join(args.output_dir, "encoder_init.pt"), model.encoder,
                            model.encoder.cfg, "mae.py at step 0 (nothing learned)", args)
    img_size = model.encoder.cfg.img_size
    # App. A.1 / Table 1e: RandomResizedCrop(0.2, 1) + flip only; ImageNet mean/std.
    data_kw = dict(img_size=img_size, data_root=args.data_root, download=args.download,
                   num_train=args.num_train, num_val=args.num_val)
    try:
        train_set = build_dataset(args.data, "train", build_transform("pretrain", img_size), **data_kw)
        val_set = build_dataset(args.data, "val", build_transform("eval", img_size, crop_pct=1.0), **data_kw)
    except DataError as e:
        raise SystemExit(f"--data {args.data}: {e}") from None
    loader, steps_per_epoch = engine.train_loader(train_set, args, ctx)
    recon_imgs = torch.stack([val_set[i][0] for i in range(min(8, len(val_set)))]).to(ctx.device)

    optimizer = torch.optim.AdamW(engine.param_groups(model, args.weight_decay), lr=args.lr, betas=args.betas)
    scaler = engine.make_scaler(ctx)                                     # fp16 only, else None
    start_epoch, _ = engine.resume(args, model, optimizer, scaler=scaler)
    train_model = engine.wrap_model(model, ctx, args)
    log = engine.MetricsLog(args.output_dir, ctx)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    engine.print0(f"[mae] {args.model}: {n_train / 1e6:.2f} M trainable params, {len(train_set)} images, "
                  f"{steps_per_epoch} steps/epoch, mask ratio {args.mask_ratio}")

    def loss_fn(m, batch):
        loss, _, _ = m(batch[0].to(ctx.device, non_blocking=True), mask_ratio=args.mask_ratio)
        return loss, {}

    for epoch in range(start_epoch, args.epochs):
        loss = engine.train_one_epoch(train_model, loss_fn, loader, optimizer, epoch, args, ctx, log,
                                      scaler=scaler)
        engine.print0(f"[mae] epoch {epoch}: mean loss {loss:.4f}")
        _, saved, done = engine.end_of_epoch(args, ctx, epoch, steps_per_epoch, model, optimizer,
                                             scaler=scaler)
        if saved and ctx.is_master:     # the encoder alone: finetune.py --init, maskdistill.py --teacher
            engine.save_encoder(os.path.join(args.output_dir, "encoder.pt"), model.encoder,
                                model.encoder.cfg, "mae.py", args)
            save_reconstructions(model, recon_imgs, os.path.join(args.output_dir,
                                 f"recon_epoch{epoch:03d}.png"), args.mask_ratio)
        if done:
            break
    engine.finish(args, ctx, ["recon_epoch*.png", "encoder.pt", "encoder_init.pt", "metrics.jsonl",
                              "checkpoint-*.pt"])
    return model


if __name__ == "__main__":
    main()

"""Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022, arXiv 2111.06377).

  §3 Masking         random 75% of the patches removed        masking.random_masking
  §3 MAE encoder     the ViT on the visible patches (+ cls)   MaskedAutoencoder.forward_encoder
  §3 MAE decoder     Linear to 512-d, one shared learned [M], fixed sin-cos positions, 8 blocks,
                     a Linear to each patch's pixels          .forward_decoder
  §3 target, loss    each patch's pixels (normalized per patch: --norm_pix_loss); MSE on the
                     removed patches only                     .target, .forward_loss
  App. A.1           xavier init; lr = blr x batch / 256; AdamW (0.9, 0.95); Table 8   PRESETS
  Table 1c           the encoder on all patches, [M] at the removed ones   --encoder_mask_tokens
  Fig. 2, Table 1c   reconstructions, FLOPs                   mae_figures.py

Run (CPU, built-in data, 3.4 min on 2 cores; writes runs/mae_mae_vit_mini/):
    python mae.py --model mae_vit_mini --data atoms
Real run (PRETRAIN.md: 64 GPUs x 64 = 4096; on 8 GPUs add --accum_iter 8):
    torchrun --nproc_per_node=8 mae.py --model mae_vit_large_patch16 --data /path/to/imagenet \\
        --batch_size 64 --accum_iter 8
MAE Fig. 2 on your own photos, with the official demo's weights (mae_figures.visualize):
    python mae.py --visualize photo.jpg --init mae_visualize_vit_large.pth

Shapes: B batch, C channels, P patch, N patches, N_vis visible, D encoder width, Dd decoder width.
"""
import argparse
import os
import sys
from dataclasses import replace

import torch
import torch.nn as nn

import engine
from data import build_transform, dataset_from_args
from masking import random_masking
from vit import PRESETS as VIT_PRESETS
from vit import Block, ViT, ViTConfig, sincos_pos_embed_2d
from weights import load_mae_checkpoint


def patchify(imgs, p):
    """(B, C, H, W) -> (B, N, P*P*C): patches row-major, pixels channel-last in a patch (MAE's)."""
    B, C, H, W = imgs.shape
    h, w = H // p, W // p
    x = imgs.reshape(B, C, h, p, w, p).permute(0, 2, 4, 3, 5, 1)     # (B, h, w, P, P, C)
    return x.reshape(B, h * w, p * p * C)


def unpatchify(x, p, channels=3):
    """(B, N, P*P*C) -> (B, C, H, W); the exact inverse of patchify for a square grid."""
    B, N, _ = x.shape
    h = w = int(N ** 0.5)
    x = x.reshape(B, h, w, p, p, channels).permute(0, 5, 1, 3, 2, 4)  # (B, C, h, P, w, P)
    return x.reshape(B, channels, h * p, w * p)


class MaskedAutoencoder(nn.Module):
    """MAE §3: an asymmetric encoder-decoder.
    `model(imgs, mask_ratio)` -> (loss, pred (B, N, P*P*C), mask (B, N) bool, True = removed)."""

    def __init__(self, encoder_cfg, decoder_dim=512, decoder_depth=8, decoder_heads=16,
                 norm_pix_loss=True, encoder_mask_tokens=False):
        super().__init__()
        # App. A.1: sin-cos positions in encoder and decoder; no drop path in pre-training.
        self.encoder = ViT(replace(encoder_cfg, pos_embed="sincos", num_classes=0, drop_path=0.0,
                                   global_pool="token", mask_token=encoder_mask_tokens))
        self.norm_pix_loss, self.encoder_mask_tokens = norm_pix_loss, encoder_mask_tokens
        self.patch_size, self.in_chans = encoder_cfg.patch_size, encoder_cfg.in_chans
        D, N, Dd = encoder_cfg.embed_dim, self.encoder.patch_embed.num_patches, decoder_dim
        # ---- the decoder (§3): pre-training only, ~10% of the encoder's compute per token
        self.decoder_embed = nn.Linear(D, Dd)                      # encoder width -> decoder's
        # One shared, learned [M]. NOTE(paper): with --encoder_mask_tokens (Table 1c) the encoder's
        # [M] fills the removed slots, so the decoder has none (strict DDP: every parameter used).
        self.mask_token = None if encoder_mask_tokens else nn.Parameter(torch.zeros(1, 1, Dd))
        grid = self.encoder.patch_embed.grid_size
        pos = sincos_pos_embed_2d(Dd, *grid).unsqueeze(0)          # (1, 1+N, Dd), fixed
        self.decoder_pos_embed = nn.Parameter(pos, requires_grad=False)
        cfg = replace(encoder_cfg, embed_dim=Dd, num_heads=decoder_heads, mlp_dim=4 * Dd, drop_path=0.0)
        self.decoder_blocks = nn.ModuleList(Block(Dd, decoder_heads, 4 * Dd, cfg)
                                            for _ in range(decoder_depth))
        self.decoder_norm = nn.LayerNorm(Dd, eps=encoder_cfg.norm_eps)
        self.decoder_pred = nn.Linear(Dd, self.patch_size ** 2 * self.in_chans)   # a patch's pixels
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
        """Pre-training decays the cls and mask tokens too (main_pretrain.py exempts only 1-D
        parameters and biases: engine.param_groups); the frozen sin-cos tables are in no group."""
        return set()

    def forward_encoder(self, imgs, mask_ratio):
        """§3 "MAE encoder": embed (positions added), drop the removed patches, encode cls + the
        visible ones -> (latent (B, 1+N_vis, D), mask, ids_restore); masks on torch's global RNG."""
        x = self.encoder.embed_patches(imgs)                       # (B, N, D), positions added
        x, mask, ids_restore = random_masking(x, mask_ratio)      # (B, N_vis, D), (B, N), (B, N)
        x = self.encoder.forward_blocks(self.encoder.prepend_cls(x))   # (B, 1+N_vis, D), normed
        return x, mask, ids_restore

    def forward_encoder_with_mask_tokens(self, imgs, mask_ratio):
        """Table 1c "encoder w/ [M]": the same random mask, but the encoder sees all N tokens, its
        [M] at the removed ones (3.3x the FLOPs for ViT-L) -> (latent (B, 1+N, D), mask, ids)."""
        B, N = imgs.shape[0], self.encoder.patch_embed.num_patches
        _, mask, ids_restore = random_masking(imgs.new_zeros(B, N, 1), mask_ratio)  # the mask only
        return self.encoder.forward_features(imgs, mask), mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)                                 # (B, 1+N_vis, Dd)
        B, N = ids_restore.shape
        if not self.encoder_mask_tokens:                          # (Table 1c: all N, in order)
            # §3 "Simple implementation": append mask tokens, unshuffle to align with the targets
            masked = self.mask_token.to(x.dtype).expand(B, N + 1 - x.shape[1], -1)
            tokens = torch.cat([x[:, 1:], masked], dim=1)         # (B, N, Dd), shuffled
            index = ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1])
            tokens = torch.gather(tokens, 1, index)               # (B, N, Dd), patch order
            x = torch.cat([x[:, :1], tokens], dim=1)              # (B, 1+N, Dd)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        return self.decoder_pred(self.decoder_norm(x))[:, 1:]     # (B, N, P*P*C), no cls

    def target(self, imgs):
        """§3 "Reconstruction target": the patch pixels; with norm_pix_loss each patch normalized
        by its own mean and (unbiased) variance, eps 1e-6 inside the sqrt, as models_mae.py."""
        t = patchify(imgs, self.patch_size)                       # (B, N, P*P*C)
        if self.norm_pix_loss:
            mean, var = t.mean(dim=-1, keepdim=True), t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1e-6) ** 0.5
        return t

    def forward_loss(self, imgs, pred, mask):
        """MSE per patch, averaged over the removed patches only (§3, as BERT)."""
        loss = ((pred.float() - self.target(imgs.float())) ** 2).mean(dim=-1)     # (B, N)
        m = mask.float()
        return (loss * m).sum() / m.sum()

    def forward(self, imgs, mask_ratio=0.75):
        if self.encoder_mask_tokens:
            latent, mask, ids_restore = self.forward_encoder_with_mask_tokens(imgs, mask_ratio)
        else:
            latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio)
        pred = self.forward_decoder(latent, ids_restore)          # (B, N, P*P*C)
        return self.forward_loss(imgs, pred, mask), pred, mask


# The models: the encoder is a vit.py preset (ViT-B/L/H, §4); the decoder 512-d, 8 blocks (§3,
# Table 1a-b). NOTE(paper): its 16 heads are models_mae.py's; the paper does not give them.
_DECODER = dict(decoder_dim=512, decoder_depth=8, decoder_heads=16)
MAE_PRESETS = {
    "mae_vit_base_patch16": dict(_DECODER, encoder="vit_base_patch16"),
    "mae_vit_large_patch16": dict(_DECODER, encoder="vit_large_patch16"),
    "mae_vit_huge_patch14": dict(_DECODER, encoder="vit_huge_patch14"),
    # 32 px, CPU (Table 1a: one decoder block suffices for fine-tuning); the tests'
    "mae_vit_mini": dict(encoder="vit_mini", decoder_dim=128, decoder_depth=1, decoder_heads=4),
    "mae_vit_test": dict(encoder="vit_test", decoder_dim=32, decoder_depth=1, decoder_heads=2),
}


def create_mae(name, norm_pix_loss=True, encoder_mask_tokens=False, **overrides):
    """`create_mae("mae_vit_base_patch16", encoder_mask_tokens=True)`; other overrides go to the
    decoder (decoder_dim / depth / heads) or to the encoder's ViTConfig (e.g. img_size)."""
    if name not in MAE_PRESETS:
        raise ValueError(f"unknown model '{name}'; choose one of: {', '.join(MAE_PRESETS)}")
    spec = dict(MAE_PRESETS[name])
    dec = {k: overrides.pop(k, spec[k]) for k in ["decoder_dim", "decoder_depth", "decoder_heads"]}
    cfg = ViTConfig(**{**VIT_PRESETS[spec["encoder"]], **overrides})
    return MaskedAutoencoder(cfg, norm_pix_loss=norm_pix_loss,
                             encoder_mask_tokens=encoder_mask_tokens, **dec)


# ----------------------------------------------------------------------------- presets

# Table 8 / PRETRAIN.md: blr 1.5e-4 (x batch / 256), wd 0.05, betas (0.9, 0.95), batch 4096 (64
# per GPU on 64 GPUs), warmup 40, 800 epochs (1600 for the released weights), min lr 0, no clipping.
_MAE_RECIPE = dict(epochs=800, warmup_epochs=40, blr=1.5e-4, lr_batch=256, weight_decay=0.05,
                   betas=(0.9, 0.95), batch_size=64, min_lr=0.0, clip_grad=None, mask_ratio=0.75,
                   norm_pix_loss=True, save_init=False)
PRESETS = {name: dict(_MAE_RECIPE) for name in MAE_PRESETS}
# NOTE(paper): the laptop presets are ours: a short schedule needs a higher base lr. The mini one
# keeps its encoder at step 0 too (encoder_init.pt), the fair "from scratch" for its fine-tuning.
PRESETS["mae_vit_mini"].update(epochs=10, warmup_epochs=1, blr=1.5e-3, batch_size=128,
                               save_every=5, save_init=True)
PRESETS["mae_vit_test"].update(epochs=2, warmup_epochs=1, blr=1.5e-3, batch_size=16, num_workers=0)


# ----------------------------------------------------------------------------- training script

def get_args(argv=None):
    p = engine.common_parser("MAE pre-training (He et al. 2022).")
    g = p.add_argument_group("MAE (§3, App. A.1)")
    g.add_argument("--mask_ratio", type=float, default=0.75, help="patches removed (Fig. 5)")
    g.add_argument("--norm_pix_loss", action=argparse.BooleanOptionalAction, default=True,
                   help="per-patch normalized pixel target (Table 1d)")
    g.add_argument("--encoder_mask_tokens", action="store_true",
                   help="Table 1c ablation: the encoder runs on all tokens with [M]")
    g.add_argument("--img_size", type=int, default=None, help="resolution (default: the encoder's)")
    g.add_argument("--init", default="", help="encoder + decoder weights to start from: a mae.py "
                   "checkpoint or an official one (mae_visualize_*.pth: add --no-norm_pix_loss)")
    g.add_argument("--save_init", action=argparse.BooleanOptionalAction, default=False,
                   help="also save the encoder at step 0 (encoder_init.pt): a from-scratch baseline")
    return engine.parse_args(p, PRESETS, argv, script="mae", resolve=resolve_args)


def resolve_args(args, parser):
    """Whole patches, and a ratio that leaves patches to see and to reconstruct."""
    cfg = ViTConfig(**VIT_PRESETS[MAE_PRESETS[args.model]["encoder"]])
    size = args.img_size or cfg.img_size
    engine.check_img_size(parser, size, cfg.patch_size)
    n = (size // cfg.patch_size) ** 2
    if not 0 < args.mask_ratio < 1 or int(n * (1 - args.mask_ratio)) < 1:
        parser.error(f"--mask_ratio {args.mask_ratio} must be in (0, 1) and keep at least one of "
                     f"the {n} patches visible (MAE: 0.75)")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--visualize" or a.startswith("--visualize=") for a in argv):
        from mae_figures import visualize
        return visualize(argv)
    from mae_figures import save_reconstructions                  # Fig. 2, at each saved epoch
    args = get_args(argv)
    ctx = engine.setup(args)
    size = {"img_size": args.img_size} if args.img_size else {}
    model = create_mae(args.model, norm_pix_loss=args.norm_pix_loss,
                       encoder_mask_tokens=args.encoder_mask_tokens, **size).to(ctx.device)
    if args.init:   # before --resume, which (when given) replaces these weights; no file: one line
        n = load_mae_checkpoint(model, engine.load_file(args.init, "--init"), args.init)
        engine.print0(f"[mae] --init {args.init}: {n} tensors loaded")
    img = model.encoder.cfg.img_size
    # App. A.1 / Table 1e: RandomResizedCrop(0.2, 1) + flip only; ImageNet mean/std.
    train_set = dataset_from_args(args, "train", build_transform("pretrain", img), img)
    val_set = dataset_from_args(args, "val", build_transform("eval", img, crop_pct=1.0), img)
    loader, steps_per_epoch = engine.train_loader(train_set, args, ctx)
    recon_imgs = torch.stack([val_set[i][0] for i in range(min(8, len(val_set)))]).to(ctx.device)

    groups = engine.param_groups(model, args.weight_decay)
    optimizer = torch.optim.AdamW(groups, lr=args.lr, betas=args.betas)
    scaler = engine.make_scaler(ctx)                              # fp16 only, else None
    start_epoch, _ = engine.resume(args, model, optimizer, scaler=scaler)
    if args.save_init and ctx.is_master and not args.resume:     # the encoder, nothing learned
        engine.save_encoder(os.path.join(args.output_dir, "encoder_init.pt"), model.encoder,
                            model.encoder.cfg, "mae.py at step 0 (nothing learned)", args)
    train_model = engine.wrap_model(model, ctx, args)
    log = engine.MetricsLog(args.output_dir, ctx)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    engine.print0(f"[mae] {args.model}: {n_train / 1e6:.2f} M trainable params, {len(train_set)} "
                  f"images, {steps_per_epoch} steps/epoch, mask ratio {args.mask_ratio}")

    def loss_fn(m, batch):
        loss, _, _ = m(batch[0].to(ctx.device, non_blocking=True), mask_ratio=args.mask_ratio)
        return loss, {}

    for epoch in range(start_epoch, args.epochs):
        loss = engine.train_one_epoch(train_model, loss_fn, loader, optimizer, epoch, args, ctx,
                                      log, scaler=scaler)
        engine.print0(f"[mae] epoch {epoch}: mean loss {loss:.4f}")
        _, saved, done = engine.end_of_epoch(args, ctx, epoch, steps_per_epoch, model, optimizer,
                                             scaler=scaler)
        if saved and ctx.is_master:    # the encoder alone: finetune.py --init, maskdistill --teacher
            engine.save_encoder(os.path.join(args.output_dir, "encoder.pt"), model.encoder,
                                model.encoder.cfg, "mae.py", args)
            png = os.path.join(args.output_dir, f"recon_epoch{epoch:03d}.png")
            save_reconstructions(model, recon_imgs, png, args.mask_ratio)
        if done:
            break
    engine.finish(args, ctx, ["recon_epoch*.png", "encoder.pt", "encoder_init.pt",
                              "metrics.jsonl", "checkpoint-*.pt"])
    return model


if __name__ == "__main__":
    main()

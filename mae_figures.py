"""MAE's figures and tables around mae.py (He et al., CVPR 2022, arXiv 2111.06377): what its
pre-training is shown and measured by, kept apart from the method itself.

  Fig. 2     reconstructions: `reconstruction_rows`, `save_reconstructions` (mae.py draws one PNG
             per saved epoch) and `visualize`, MAE Fig. 2 on your own photos with any MAE weights:
                 python mae.py --visualize photo.jpg --init mae_visualize_vit_large.pth
  Table 1c   `mae_flops`: multiply-adds of one pre-training step, the encoder on the visible patches
             only or on all of them with mask tokens (3.3x for ViT-L); timed by experiments/bench.py
"""
import argparse
import os

import torch

import engine
from data import IMAGENET_MEAN, IMAGENET_STD, build_transform
from mae import MAE_PRESETS, create_mae, patchify, unpatchify
from weights import load_mae_checkpoint


# ----------------------------------------------------------------------------- Table 1c: FLOPs

def mae_flops(name, encoder_mask_tokens, mask_ratio=0.75, img_size=None):
    """Table 1c: forward multiply-adds (G) of one pre-training step on one image, the encoder on
    the visible patches only or on all of them with [M]; counted on the meta device (no memory)."""
    from torch.utils.flop_counter import FlopCounterMode
    kw = {"img_size": img_size} if img_size else {}
    with torch.device("meta"):
        model = create_mae(name, encoder_mask_tokens=encoder_mask_tokens, **kw)
        x = torch.empty(1, 3, model.encoder.cfg.img_size, model.encoder.cfg.img_size)
    with FlopCounterMode(display=False) as counter:
        model(x, mask_ratio)
    return counter.get_total_flops() / 2 / 1e9      # FlopCounterMode counts 2 per multiply-add


# ----------------------------------------------------------------------------- Fig. 2: reconstructions

@torch.no_grad()
def reconstruction_rows(model, imgs, mask_ratio, mean=IMAGENET_MEAN, std=IMAGENET_STD, seed=0):
    """[(label, (B, C, H, W) in [0, 1])], mask (B, N): the masked input (removed = 0 in normalized
    space, the dataset-mean grey, as the official demo), the reconstruction and the original. A
    norm-pix prediction (per patch mean 0, var 1) is shown at the visible patches' average mean/std
    (what the model saw), and at each removed patch's TRUE mean/std (the ground truth leaks; how
    MAE users usually show it, mae#153), labelled so."""
    was_training = model.training
    model.eval()
    rng = torch.get_rng_state()
    torch.manual_seed(seed)                                  # the same masks at every epoch
    _, pred, mask = model(imgs, mask_ratio)
    torch.set_rng_state(rng)
    model.train(was_training)
    p, C = model.patch_size, model.in_chans
    orig, pred = patchify(imgs, p).float(), pred.float()     # (B, N, P*P*C) each, normalized
    m = mask.unsqueeze(-1).float()                           # (B, N, 1), 1 = removed
    mean_t, std_t = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)

    def to_img(t):                                           # (B, N, P*P*C) -> (B, C, H, W)
        return (unpatchify(t, p, C).cpu() * std_t + mean_t).clamp(0, 1)

    def pasted(t):                                           # the visible patches from the input
        return orig * (1 - m) + t * m
    rows = [("masked input (removed = dataset mean)", to_img(orig * (1 - m)))]
    if not model.norm_pix_loss:
        rows += [("reconstruction, every patch (MAE Fig. 2)", to_img(pred)),
                 ("reconstruction + visible patches", to_img(pasted(pred)))]
    else:
        mu, sd = orig.mean(-1, keepdim=True), (orig.var(-1, keepdim=True) + 1e-6) ** 0.5  # (B, N, 1)
        vis = 1 - m
        n_vis = vis.sum(1, keepdim=True).clamp(min=1)
        mu_v = (mu * vis).sum(1, keepdim=True) / n_vis                                  # (B, 1, 1)
        sd_v = (sd * vis).sum(1, keepdim=True) / n_vis
        rows += [("prediction + visible; visible patches' mean/std",
                  to_img(pasted(pred * sd_v + mu_v))),
                 ("prediction + visible; TRUE patch mean/std (GT leak)",
                  to_img(pasted(pred * sd + mu)))]
    return rows + [("original", to_img(orig))], mask


def save_reconstructions(model, imgs, path, mask_ratio, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                         seed=0):
    """PNG: one column per image, the rows of `reconstruction_rows` each under its label; small
    images are upscaled (nearest) to at least 128 px so that a 32 px patch grid can be read."""
    from PIL import Image, ImageDraw, ImageFont
    from torchvision.utils import make_grid
    rows, _ = reconstruction_rows(model, imgs, mask_ratio, mean, std, seed)
    scale = max(1, -(-128 // imgs.shape[-1]))                 # ceil(128 / H): 4x at 32 px
    font = ImageFont.load_default(size=14)
    strips = []
    for label, x in rows:
        grid = make_grid(x, nrow=len(x), padding=1)           # (C, h, w) in [0, 1]
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
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    canvas.save(path)


def visualize(argv):
    """python mae.py --visualize IMG [IMG ...] --init FILE [--model M] [--out PNG]: MAE Fig. 2 on
    your own images, as the official demo notebook: each resized to the model's size, normalized,
    75% of its patches removed, reconstructed. FILE: anything --init takes; a mae.py or an official
    main_pretrain.py checkpoint says its model and target; the released mae_visualize_*.pth (ViT-L)
    do not: then --model (default mae_vit_large_patch16) and the plain-pixel target they learned.
    The official weights: mae_visualize_vit_large.pth, downloaded by the "Visualization demo" of
    MAE's README (github.com/facebookresearch/mae; its Colab notebook) from
    https://dl.fbaipublicfiles.com/mae/visualize/mae_visualize_vit_large.pth."""
    p = engine.Parser(prog="mae.py --visualize", description=visualize.__doc__)
    p.add_argument("--visualize", nargs="+", required=True, metavar="IMG", help="image files")
    p.add_argument("--init", required=True, help="MAE weights (encoder + decoder), e.g. the "
                   "official mae_visualize_vit_large.pth (its address: above)")
    p.add_argument("--model", default=None, help=f"one of {', '.join(MAE_PRESETS)} (default: the "
                   f"file's, else mae_vit_large_patch16)")
    p.add_argument("--norm_pix_loss", action=argparse.BooleanOptionalAction, default=None,
                   help="the target the weights learned (default: the file's, else pixels)")
    p.add_argument("--mask_ratio", type=float, default=0.75)
    p.add_argument("--seed", type=int, default=0, help="which patches are removed")
    p.add_argument("--out", default="runs/mae_visualize.png")
    a = p.parse_args(argv)
    from PIL import Image
    ckpt = engine.load_file(a.init, "--init")
    saved = ckpt.get("args") or {} if isinstance(ckpt, dict) else {}
    saved = vars(saved) if isinstance(saved, argparse.Namespace) else saved   # official: a Namespace
    name = a.model or saved.get("model", "mae_vit_large_patch16")
    norm_pix = bool(saved.get("norm_pix_loss", False)) if a.norm_pix_loss is None else a.norm_pix_loss
    if name not in MAE_PRESETS:
        p.error(f"--model {name}: choose one of {', '.join(MAE_PRESETS)}")
    model = create_mae(name, norm_pix_loss=norm_pix)
    load_mae_checkpoint(model, ckpt, a.init)
    size = model.encoder.cfg.img_size
    tf = build_transform("eval", size, crop_pct=1.0)
    imgs = []
    for f in a.visualize:
        try:
            img = Image.open(f).convert("RGB")
        except OSError as e:
            raise SystemExit(f"--visualize {f}: not a readable image ({e})") from None
        imgs.append(tf(img.resize((size, size), Image.BICUBIC)))   # the demo resizes, no crop
    save_reconstructions(model, torch.stack(imgs), a.out, a.mask_ratio, seed=a.seed)
    print(f"[mae] {name} ({'norm-pix' if norm_pix else 'pixel'} target) from {a.init}: "
          f"{len(imgs)} image(s), {a.mask_ratio:.0%} removed -> {a.out}")
    return a.out

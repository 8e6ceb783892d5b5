"""Other codebases' weights <-> ours: the one file that knows their names, layouts and tricks.

No paper's idea is here; it lets the concept files load the released weights and hand ours to timm.
Everything ends in vit.py's (timm / MAE) names.
  in      CLIP (OpenAI / open_clip: `read_clip_weights`, `clip_to_vit_state_dict`), official MAE
          (`load_mae_checkpoint`, for mae.py), a MaskDistill teacher (`teacher_vit`), encoders to
          fine-tune (`load_pretrained`: ours, timm's, MAE's, BEiT v2's; `read_init`,
          `check_encoder_size` for finetune.py --init)
  resize  positions (`resize_pos_embed`, MAE / FT-CLIP), a CLIP teacher's (`resize_teacher_pos_embed`,
          BEiT v2), relative-position tables (`resize_rel_pos_bias`: BEiT v2's SciPy interp2d spline)
  out     timm (`timm_state_dict`): python weights.py export CKPT --out model.pth [--ema | --raw]

Shape legend: N patches, D width, H heads, g / G old / new grid side, K relative-position rows.
"""
import argparse
import logging
import math
import os
import textwrap
import warnings
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

import engine
from vit import PRESETS as VIT_PRESETS
from vit import ViT, ViTConfig

# ----------------------------------------------------------------------------- position tables


def resize_pos_embed(pos_embed, new_grid, num_prefix=1):
    """(1, prefix+N, D) position embeddings to another patch grid, the cls row kept: bicubic,
    align_corners=False, as MAE's interpolate_pos_embed and FT-CLIP do (224 -> 384 fine-tuning)."""
    prefix, grid = pos_embed[:, :num_prefix], pos_embed[:, num_prefix:]
    old = int(math.sqrt(grid.shape[1]))
    if (old, old) == tuple(new_grid):
        return pos_embed
    D = grid.shape[-1]
    grid = grid.reshape(1, old, old, D).permute(0, 3, 1, 2).float()              # (1, D, g, g)
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, D).to(pos_embed.dtype)        # (1, N', D)
    return torch.cat([prefix, grid], dim=1)


def resize_teacher_pos_embed(pos_embed, grid, how="beit2"):
    """(1, 1+g*g, D) -> (1, 1+Gh*Gw, D) for a teacher fed another resolution (MaskDistill §4.1:
    CLIP-L/14's 16 x 16 table at 196 px). NOTE(paper): the paper does not say how; "beit2" resizes
    as BEiT v2's teachers (bicubic with scale_factor (G + 0.1) / g: G rows sampled at the scale
    14.1/16, 1-2% off an exact resize per position on CLIP-L/14), the code whose targets MaskDistill
    used; "exact": size (Gh, Gw), `resize_pos_embed` (--teacher_pos_resize exact)."""
    n = pos_embed.shape[1] - 1
    old = math.isqrt(n)
    if old * old != n or (old, old) == tuple(grid):     # not square: load_pretrained reports it
        return pos_embed
    if how == "exact":
        return resize_pos_embed(pos_embed, grid)
    D = pos_embed.shape[-1]
    table = pos_embed[:, 1:].reshape(1, old, old, D).permute(0, 3, 1, 2).float()  # (1, D, g, g)
    scale = ((grid[0] + 0.1) / old, (grid[1] + 0.1) / old)
    table = F.interpolate(table, scale_factor=scale, mode="bicubic", align_corners=False)
    assert tuple(table.shape[-2:]) == tuple(grid), table.shape                    # (1, D, Gh, Gw)
    table = table.permute(0, 2, 3, 1).reshape(1, -1, D).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], table], dim=1)


def cubic_spline_matrix(x, xq):
    """W (m, n), float64, with W @ y = the cubic spline through (x_i, y_i) read at xq: C2, not-a-knot
    ends (third derivative continuous at x_1 and x_{n-2}), i.e. the interpolating spline FITPACK fits
    with s=0 (SciPy's interp2d / RectBivariateSpline, k=3). Points outside [x_0, x_{n-1}] are
    clamped, as FITPACK's evaluator does. Written with the moments M_i = S''(x_i); n >= 4."""
    x, xq = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(xq, dtype=torch.float64)
    n = len(x)
    if n < 4:
        raise ValueError(f"a not-a-knot cubic spline needs at least 4 points, got {n}")
    h = x[1:] - x[:-1]                                                           # (n-1,) widths
    A = torch.zeros(n, n, dtype=torch.float64)                                   # A M = R y
    R = torch.zeros(n, n, dtype=torch.float64)
    for i in range(1, n - 1):
        # S' continuous at x_i: h_{i-1} M_{i-1} + 2 (h_{i-1} + h_i) M_i + h_i M_{i+1}
        #                       = 6 (slope_i - slope_{i-1})
        A[i, i - 1:i + 2] = torch.stack([h[i - 1], 2 * (h[i - 1] + h[i]), h[i]])
        R[i, i - 1:i + 2] = torch.stack([6 / h[i - 1], -6 / h[i - 1] - 6 / h[i], 6 / h[i]])
    A[0, :3] = torch.stack([h[1], -(h[0] + h[1]), h[0]])           # not-a-knot: (M1-M0)/h0 = (M2-M1)/h1
    A[-1, -3:] = torch.stack([h[-1], -(h[-2] + h[-1]), h[-2]])     # and the same at the other end
    M = torch.linalg.solve(A, R)                                   # (n, n): moments = M @ y
    xq = xq.clamp(x[0], x[-1])
    i = (torch.searchsorted(x, xq, right=True) - 1).clamp(0, n - 2)   # interval of each query
    hi, t0, t1 = h[i], x[i + 1] - xq, xq - x[i]
    rows = torch.arange(len(xq))
    Wy = torch.zeros(len(xq), n, dtype=torch.float64)
    WM = torch.zeros(len(xq), n, dtype=torch.float64)
    Wy[rows, i], Wy[rows, i + 1] = t0 / hi, t1 / hi                # S = the chord in y ...
    WM[rows, i] = t0 ** 3 / (6 * hi) - hi * t0 / 6                 # ... plus the moments' cubic
    WM[rows, i + 1] = t1 ** 3 / (6 * hi) - hi * t1 / 6
    return Wy + WM @ M


def resize_rel_pos_bias(table, new_grid, num_extra=3):
    """A (K, H) relative-position table of a G x G grid resized to G' x G', as BEiT v2's fine-tuning
    (run_class_finetuning.py): per head, the (2G-1)^2 offsets sit at the coordinates 0, +-1, +-(1+q),
    +-(1+q+q^2), ... whose outermost is about G'-1 (q by bisection on [1.01, 1.5]); a bicubic spline
    through them is read at the integer offsets -(G'-1)..G'-1 (SciPy's interp2d(kind='cubic') there,
    `cubic_spline_matrix` on both axes here), and the 3 cls rows are appended back unchanged."""
    src, dst = math.isqrt(table.shape[0] - num_extra), 2 * new_grid[0] - 1
    if new_grid[0] != new_grid[1] or src * src != table.shape[0] - num_extra:
        raise ValueError(f"relative position table {tuple(table.shape)}: only square grids are "
                         f"resized (as BEiT v2)")
    if src == dst:
        return table
    left, right = 1.01, 1.5                                  # BEiT v2's bisection, as written there
    while right - left > 1e-6:
        q = (left + right) / 2.0
        if (1.0 - q ** (src // 2)) / (1.0 - q) > dst // 2:   # 1 + q + ... + q^(S/2 - 1) vs G' - 1
            right = q
        else:
            left = q
    dis, cur = [], 1.0
    for i in range(src // 2):                                # 1, 1+q, 1+q+q^2, ...
        dis.append(cur)
        cur += q ** (i + 1)
    x = [-d for d in reversed(dis)] + [0.0] + dis           # (2G-1,) source coordinates
    W = cubic_spline_matrix(x, torch.arange(-(dst // 2), dst // 2 + 1))        # (2G'-1, 2G-1)
    H = table.shape[1]
    z = table[:-num_extra].double().t().reshape(H, src, src)                  # (H, dr, dc)
    z = (W @ z @ W.t()).reshape(H, dst * dst).t()                             # (K'-3, H)
    return torch.cat([z.to(table.dtype), table[-num_extra:]])                # (K', H)


# ----------------------------------------------------------------------------- encoders in

def load_pretrained(model, state_dict, log=print):
    """Load an encoder (mae.py / maskdistill.py / timm / official MAE / BEiT v2, vit.py names), adapting
    only what fine-tuning changes: positions and relative-position tables resized to the model's grid;
    a shared table copied into every block when the model has one per block (BEiT v2); a head of
    another shape, and a final norm / proj / [M] the model lacks, dropped (MAE, FT-CLIP). A new head /
    fc_norm may be missing; any other mismatch is a ValueError naming the keys. -> the dropped keys."""
    sd = {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in state_dict.items()
          if not k.endswith("relative_position_index")}            # BEiT saves its index buffers
    own = model.state_dict()
    if "pos_embed" in sd and "pos_embed" in own and sd["pos_embed"].shape != own["pos_embed"].shape:
        sd["pos_embed"] = resize_pos_embed(sd["pos_embed"], model.patch_embed.grid_size)
    shared = "rel_pos_bias.relative_position_bias_table"
    per_block = "blocks.0.attn.relative_position_bias_table"
    expand = shared in sd and shared not in own and per_block in own
    grid = model.patch_embed.grid_size
    for k in [k for k in sd if k.endswith("relative_position_bias_table") and (k in own or expand)]:
        old = math.isqrt(sd[k].shape[0] - 3)
        if old != 2 * grid[0] - 1:
            sd[k] = resize_rel_pos_bias(sd[k], grid)
            if not k.startswith("blocks.") or k == per_block:       # one line, not one per block
                log(f"[weights] relative position bias {old}x{old} -> {2 * grid[0] - 1}x"
                    f"{2 * grid[1] - 1} offsets (grid {grid[0]}x{grid[1]}; BEiT v2's bicubic "
                    f"interpolation on geometric coordinates)")
    if expand:                                                   # BEiT v2: one copy per block
        table = sd.pop(shared)
        sd.update({f"blocks.{i}.attn.relative_position_bias_table": table.clone()
                   for i in range(len(model.blocks))})
        log(f"[weights] the shared relative position bias is copied into each of the "
            f"{len(model.blocks)} blocks (BEiT v2)")
    elif shared in own and per_block in sd:
        raise ValueError("the checkpoint has one relative position table per block, this model one "
                         "shared table: build it with shared_rel_pos_bias=False (finetune.py: without "
                         "--shared_rel_pos_bias)")
    dropped = [k for k in sd if k.startswith(("head.", "proj.", "norm.", "mask_token")) and
               (k not in own or (k.startswith("head.") and sd[k].shape != own[k].shape))]
    for k in dropped:
        del sd[k]
    bad_shape = {k: (tuple(v.shape), tuple(own[k].shape)) for k, v in sd.items()
                 if k in own and v.shape != own[k].shape}
    if bad_shape:
        raise ValueError(f"checkpoint does not fit this model (key: checkpoint shape vs model shape): "
                         f"{bad_shape}")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not k.startswith(("head.", "fc_norm."))]
    if missing or unexpected:
        raise ValueError(f"checkpoint does not fit this model: missing keys {missing}, unexpected keys "
                         f"{unexpected}")
    return dropped


def vit_config_of(ckpt):
    """The architecture a checkpoint was built with: an encoder.pt's `vit_config`, or the one
    finetune.py records in its checkpoints' args (None for official MAE / timm / bare state dicts)."""
    if not isinstance(ckpt, dict):
        return None
    args = ckpt.get("args")                             # official files: an argparse.Namespace
    return ckpt.get("vit_config") or (args.get("vit_config") if isinstance(args, dict) else None)


def read_init(path, ema=None, flag="--init"):
    """(checkpoint, state dict, EMA used) for finetune.py --init: an encoder.pt, an official MAE file,
    a finetune.py checkpoint, or a bare state dict. A finetune.py checkpoint also holds its EMA: `ema`
    True takes it, False the raw weights, None the EMA when its run selected checkpoints by EMA
    accuracy (checkpoint-best.pt is FT-CLIP's best-EMA model). EMA used: None = none in the file."""
    ckpt = engine.load_file(path, flag)
    has_ema = isinstance(ckpt.get("ema"), dict) and bool(ckpt["ema"])
    if ema is None and has_ema:
        ema = (ckpt.get("extra") or {}).get("selected_by") == "ema"
    if ema and not has_ema:
        raise SystemExit(f"{flag} {path}: this checkpoint holds no EMA weights (trained with "
                         f"--ema_decay 0, or not a finetune.py checkpoint); drop the EMA flag")
    state = ckpt["ema"] if ema else ckpt.get("model", ckpt.get("state_dict", ckpt))
    return ckpt, state, ema


SIZE_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim")


def check_encoder_size(vit_config, arch, flag, builds=""):
    """One line naming both when the encoder (`vit_config`) is not the size of preset `arch`
    (`flag`: --init PATH, `builds`: --model NAME builds)."""
    def size(c):
        return tuple(c.get(k, ViTConfig.__dataclass_fields__[k].default) for k in SIZE_FIELDS)

    def describe(c):
        p, d, depth, h, mlp = size(c)
        return f"patch {p}, width {d}, depth {depth}, {h} heads" + (f", MLP {mlp}" if mlp else "")
    if size(vit_config) != size(VIT_PRESETS[arch]):
        fits = [a for a in VIT_PRESETS if size(VIT_PRESETS[a]) == size(vit_config)][:1]
        fix = f"--arch {fits[0]} (or a --model preset built on it)" if fits else "its --model / --arch"
        raise SystemExit(f"{flag} is a {describe(vit_config)} encoder{f' ({fits[0]})' * bool(fits)}, but "
                         f"{builds}{arch} ({describe(VIT_PRESETS[arch])}): pass {fix}")


# the architecture an --init encoder brings with it (never its size, which check_encoder_size guards)
ARCH_FIELDS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_dim", "norm_eps", "act",
               "qkv_bias", "qv_bias", "patch_bias", "norm_pre", "rel_pos_bias", "layer_scale",
               "pos_embed")


def init_config(arch, init, init_ema, switches, builds):
    """(ViTConfig fields, --init's state dict or None, EMA taken) for finetune.py: `arch`'s preset with
    the BEiT `switches` given on the command line ({name: value or None}); an --init encoder.pt
    brings its own ARCH_FIELDS (`builds`: "--model NAME builds ", for the message)."""
    cfg = dict(VIT_PRESETS[arch])
    cfg.update({k: v for k, v in switches.items() if v is not None})
    if not init:
        return cfg, None, init_ema
    ckpt, state, init_ema = read_init(init, init_ema)
    enc = vit_config_of(ckpt)             # None for official MAE / timm files: the arch decides
    if enc:
        check_encoder_size(enc, arch, f"--init {init}", builds)
        cfg.update({k: v for k, v in enc.items() if k in ARCH_FIELDS})
    return cfg, state, init_ema


def load_start_weights(model, arch, pretrained, state, given):
    """finetune.py's starting weights: CLIP's (`pretrained`, a tag or a file) or an --init state dict
    (positions / RPE tables resized; an unfit head, norm, [M] dropped); one line if they do not fit."""
    try:
        if pretrained:
            load_clip_state_dict(model, read_clip_weights(arch, pretrained))
        elif state is not None:
            load_pretrained(model, state, log=engine.print0)
    except ValueError as e:
        raise engine.fail(f"{given}: {e}") from None


def load_mae_checkpoint(model, ckpt, path):
    """mae.py --init / --visualize: encoder + decoder into a mae.MaskedAutoencoder, strictly, from a
    mae.py checkpoint or an official one ({"model": ...}: mae_visualize_vit_*.pth, main_pretrain.py's
    checkpoint-*.pth), whose encoder sits at the top level where ours is under `encoder.` (same timm
    names; the decoder's are equal). -> tensors loaded; a misfit is one line naming the keys."""
    state = ckpt.get("model", ckpt) if isinstance(ckpt, dict) else {}
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    state = {k if k.startswith(("encoder.", "decoder_")) or k == "mask_token" else "encoder." + k: v
             for k, v in state.items()}
    mismatch = engine.state_dict_mismatch(model, state)
    if mismatch:
        missing = set(model.state_dict()) - set(state)
        hint = ""
        if missing and all(k.startswith("decoder_") or k == "mask_token" for k in missing):
            hint = ("; an encoder-only file (mae_pretrain_vit_*.pth, encoder.pt) has no decoder: use a "
                    "full one (mae_visualize_vit_*.pth, a checkpoint-*.pt), or finetune.py --init")
        raise SystemExit(f"--init {path} does not fit this MAE ({mismatch}){hint}")
    model.load_state_dict(state)
    return len(state)


# ----------------------------------------------------------------------------- CLIP in

def clip_to_vit_state_dict(state_dict):
    """Rename an open_clip / OpenAI CLIP (full model or image tower) state dict to vit.py names:
    class_embedding -> cls_token, positional_embedding -> pos_embed, conv1 -> patch_embed.proj,
    ln_pre/ln_post -> norm_pre/norm, in_proj -> qkv (rows q|k|v), c_fc/c_proj -> fc1/fc2,
    proj -> proj.weight^T."""
    sd = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if any(k.startswith("visual.") for k in sd):                     # full CLIP: the image tower
        sd = {k[len("visual."):]: v for k, v in sd.items() if k.startswith("visual.")}
    rename = {"class_embedding": "cls_token", "positional_embedding": "pos_embed",
              "conv1.weight": "patch_embed.proj.weight", "ln_pre.weight": "norm_pre.weight",
              "ln_pre.bias": "norm_pre.bias", "ln_post.weight": "norm.weight",
              "ln_post.bias": "norm.bias", "proj": "proj.weight"}
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
                v = v.t()                                # x @ proj = Linear with weight proj^T
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
    """CLIP image-tower weights into a clip_* ViT at any resolution (positions resized). A model
    without `norm`/`proj` (FT-CLIP's pooled head) drops ln_post/proj, as FT-CLIP does."""
    return load_pretrained(model, clip_to_vit_state_dict(state_dict))


# open_clip configs of the OpenAI CLIP towers (QuickGELU: open_clip #771); tests register clip_test
OPEN_CLIP_NAMES = {"clip_b16": "ViT-B-16-quickgelu", "clip_l14": "ViT-L-14-quickgelu",
                   "clip_test": "mimlab-tiny-clip"}


# OpenAI's file names for its released weights (what `--pretrained FILE` suggests; open_clip caches its own)
OPENAI_FILES = {"clip_b16": "ViT-B-16.pt", "clip_l14": "ViT-L-14.pt"}
# the exception types (anywhere in the chain) that mean "no network" or "offline on purpose"
OFFLINE_ERRORS = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectTimeout",
                  "ConnectionError", "URLError", "gaierror", "ReadTimeout", "TimeoutException"}


def read_clip_weights(arch, pretrained, flag="--pretrained", random_init="''"):
    """OpenAI-CLIP weights from a file (state dict, .safetensors, OpenAI's TorchScript .pt) or an
    open_clip tag such as 'openai' (downloaded once); else one line naming `flag` and both ways on: a
    local file, or `flag random_init` (random weights)."""
    if os.path.isfile(pretrained):
        try:
            if pretrained.endswith(".safetensors"):
                from safetensors.torch import load_file    # comes with open_clip
                sd = load_file(pretrained)
            else:
                with warnings.catch_warnings():             # torch hands a TorchScript .pt to jit.load
                    warnings.filterwarnings("ignore", message=".*TorchScript archive.*")
                    sd = torch.load(pretrained, map_location="cpu", weights_only=True)
        except Exception:                                   # noqa: BLE001 - TorchScript: no weights_only
            try:
                sd = torch.jit.load(pretrained, map_location="cpu")
            except Exception as e:                          # noqa: BLE001
                first = str(e).splitlines()[0] if str(e) else ""
                raise engine.fail(f"{flag} {pretrained}: neither a state dict nor a TorchScript archive "
                                  f"({type(e).__name__}: {first})") from None
        sd = sd.state_dict() if isinstance(sd, nn.Module) else sd  # OpenAI's ScriptModule -> tensors
        return sd.get("state_dict", sd)
    if os.sep in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors")):
        raise engine.fail(f"{flag} {pretrained}: no such file")
    if arch not in OPEN_CLIP_NAMES:
        raise engine.fail(f"{flag} {pretrained}: {arch} has no open_clip name "
                          f"({', '.join(OPEN_CLIP_NAMES)} do); pass a state-dict file")
    import open_clip                                        # lazy: only a tag needs it
    name = OPEN_CLIP_NAMES[arch]
    ways_on = (f"go on with a local file, {flag} /path/to/{OPENAI_FILES.get(arch, 'weights.pt')}, or with "
               f"random init, {flag} {random_init}")
    # open_clip and the hub log each retry and the failure (logging, warnings): silenced while trying;
    # what went wrong is the one line below, printed once per machine (engine.fail)
    level = logging.root.manager.disable
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logging.disable(logging.CRITICAL)
            return open_clip.create_model(name, pretrained=pretrained).state_dict()
    except Exception as e:                                  # noqa: BLE001 - offline, unknown tag, ...
        chain = [e]
        while (chain[-1].__cause__ or chain[-1].__context__) and len(chain) < 10:
            chain.append(chain[-1].__cause__ or chain[-1].__context__)
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained.replace("-", "_").lower() not in tags:          # open_clip's own spelling rule
            why = f"no such tag; its tags: {', '.join(tags) or 'none'}"
        elif any(type(c).__name__ in OFFLINE_ERRORS for c in chain):
            offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
            why = ("HF_HUB_OFFLINE=1" if offline else "no network") + " and not in the local cache"
        else:                                               # the root cause, whole words
            root = chain[-1]
            why = textwrap.shorten(f"{type(root).__name__}: {root}", 200, placeholder=" ...")
        raise engine.fail(f"{flag} {pretrained}: could not get {name} weights via open_clip ({why}); "
                          f"{ways_on}") from None
    finally:
        logging.disable(level)


def teacher_vit(teacher, pretrained, grid, pos_resize="beit2"):
    """A MaskDistill teacher's ViT for a student patch grid (Gh, Gw), and the input mean/std it was
    trained with: `teacher` a CLIP preset (its open_clip tag or file in `pretrained`; "random": same
    shapes, no weights, for smoke runs) or the path of an encoder.pt (mae.py, maskdistill.py:
    MaskDistill Table 6). Positions go to the student's grid (`resize_teacher_pos_embed`)."""
    from vit import create_model
    if teacher in OPEN_CLIP_NAMES:
        patch = ViTConfig(**VIT_PRESETS[teacher]).patch_size
        vit = create_model(teacher, img_size=grid[0] * patch)
        sd, where, mean_std = None, f"--teacher_pretrained {pretrained} does not fit {teacher}", "clip"
        if pretrained != "random":
            sd = clip_to_vit_state_dict(read_clip_weights(teacher, pretrained, "--teacher_pretrained",
                                                          "random"))
    else:
        if not os.path.isfile(teacher):
            raise engine.fail(f"--teacher {teacher}: no such file; use clip_b16 | clip_l14 | an "
                              f"encoder.pt (run `python mae.py --model mae_vit_mini` first for "
                              f"runs/mae_mae_vit_mini/encoder.pt)")
        ckpt = engine.load_file(teacher, "--teacher")
        if "vit_config" not in ckpt:
            raise engine.fail(f"--teacher {teacher}: not an encoder.pt (no 'vit_config'); save one "
                              f"with engine.save_encoder")
        cfg = {k: v for k, v in ckpt["vit_config"].items() if k in ViTConfig.__dataclass_fields__}
        cfg.update(img_size=grid[0] * cfg["patch_size"], mask_token=False, drop_path=0.0)
        vit = ViT(ViTConfig(**cfg))
        sd, where = dict(ckpt["model"]), f"--teacher {teacher} does not fit a {tuple(grid)} grid"
        mean_std = (ckpt.get("args") or {}).get("student_mean_std", "imagenet")   # mae.py: ImageNet's
    if sd is not None:
        if "pos_embed" in sd and vit.pos_embed is not None:
            sd["pos_embed"] = resize_teacher_pos_embed(sd["pos_embed"], vit.patch_embed.grid_size,
                                                       pos_resize)
        try:
            load_pretrained(vit, sd)
        except ValueError as e:
            raise engine.fail(f"{where}: {e}") from None
    return vit, mean_std


# ----------------------------------------------------------------------------- timm out

# arch -> timm's model of its layout (any img_size; OpenAI CLIP is QuickGELU: *_clip_quickgelu_*)
TIMM_NAMES = {"clip_b16": "vit_base_patch16_clip_quickgelu_224",
              "clip_l14": "vit_large_patch14_clip_quickgelu_224",
              "vit_base_patch16": "vit_base_patch16_224", "vit_large_patch16": "vit_large_patch16_224",
              "vit_huge_patch14": "vit_huge_patch14_224"}
# with a relative position bias (MaskDistill / BEiT students): timm's Beit, BEiT v2's fine-tuned layout
BEIT_NAMES = {"vit_base_patch16": "beitv2_base_patch16_224",
              "vit_large_patch16": "beitv2_large_patch16_224"}


def timm_state_dict(model):
    """(state dict, kwargs): timm's VisionTransformer(**kwargs) - its Beit with a relative position
    bias - loads it strictly and gives our logits. What differs from our (timm) names: FT-CLIP's head
    (LN per token, then mean) is timm's global_pool='avg', fc_norm=False, where timm's `norm` acts on
    every token (= our fc_norm); MAE's (mean, then LN) is fc_norm=True; VisionTransformer folds BEiT's
    q/v biases into one qkv bias (k's is 0) and names layer scale ls1/ls2.gamma; Beit (BEiT's
    modeling_finetune.py) keeps our q_bias / v_bias, gamma_1/2 and tables, and a qkv bias becomes q/v
    biases (a k bias is a constant per query: it cancels in the softmax)."""
    cfg, own = model.cfg, model.state_dict()
    beit = cfg.rel_pos_bias
    if isinstance(model.head, nn.Sequential) or cfg.proj_dim or cfg.patch_bias == cfg.norm_pre:
        raise SystemExit("export: only classifiers export (no linear probe, no CLIP projection; timm has "
                         "a bias-free patch conv exactly when it has pre_norm)")
    if beit and (cfg.norm_pre or cfg.act != "gelu"):
        raise SystemExit("export: timm's Beit (relative positions) has neither CLIP's ln_pre nor QuickGELU")
    sd = {}
    for k, v in own.items():
        if k == "mask_token" or (k.endswith("attn.v_bias") and not beit):   # v_bias: folded below
            continue
        if k.endswith("attn.q_bias") and not beit:      # (3D,) = [q | 0 | v], as vit.Attention does
            v_bias = own[k.replace("q_bias", "v_bias")]
            k, v = k.replace("q_bias", "qkv.bias"), torch.cat([v, torch.zeros_like(v), v_bias])
        elif k.endswith("attn.qkv.bias") and beit:      # Beit's k bias is fixed at 0: drop ours
            q, _, v = v.chunk(3)
            sd[k.replace("qkv.bias", "q_bias")], k = q.detach().clone(), k.replace("qkv.bias", "v_bias")
        elif ".gamma_" in k and not beit:
            k = k.replace("gamma_1", "ls1.gamma").replace("gamma_2", "ls2.gamma")
        elif k.startswith("fc_norm.") and cfg.global_pool == "ln_avg":
            k = "norm." + k.removeprefix("fc_norm.")
        sd[k] = v.detach().clone()
    D = cfg.embed_dim
    kw = dict(img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=D, depth=cfg.depth,
              num_heads=cfg.num_heads, mlp_ratio=(cfg.mlp_dim or 4 * D) / D,
              qkv_bias=cfg.qkv_bias or cfg.qv_bias, init_values=cfg.layer_scale or None,
              num_classes=cfg.num_classes, global_pool="token" if cfg.global_pool == "token" else "avg",
              norm_eps=cfg.norm_eps)           # timm wants norm_layer=partial(nn.LayerNorm, eps=norm_eps)
    if beit:
        kw.update(use_abs_pos_emb=cfg.pos_embed != "none", use_rel_pos_bias=not cfg.shared_rel_pos_bias,
                  use_shared_rel_pos_bias=cfg.shared_rel_pos_bias, use_fc_norm=cfg.global_pool == "avg")
    else:
        kw.update(pre_norm=cfg.norm_pre, pos_embed="none" if cfg.pos_embed == "none" else "learn",
                  fc_norm=cfg.global_pool == "avg",
                  act_layer="quick_gelu" if cfg.act == "quick_gelu" else "gelu")
    return sd, kw


def timm_create_args(arch, kw):
    """(name, kwargs) for timm.create_model(name, pretrained=False, **kwargs) rebuilding an export of
    `arch` (kw from timm_state_dict); name None when timm has no model of that layout. beitv2_* default
    to layer scale 1e-5, no absolute positions, per-block tables: all said explicitly."""
    beit = "use_rel_pos_bias" in kw
    keys = ("use_fc_norm", "use_abs_pos_emb", "use_rel_pos_bias", "use_shared_rel_pos_bias") if beit \
        else ("fc_norm",)
    keys = ("img_size", "num_classes", "global_pool", *keys, "init_values")
    name = (BEIT_NAMES if beit else TIMM_NAMES).get(arch)
    return name, {k: kw[k] for k in keys if kw[k] is not None or beit}


def export(argv=None):
    """python weights.py export CKPT --out model.pth [--ema | --raw]: a finetune.py checkpoint's EMA
    (default when its run selected by EMA) or raw weights as a state dict for timm's VisionTransformer
    (or Beit), written only after timm's own model gave the same logits."""
    p = engine.Parser(prog="weights.py export", description=export.__doc__)
    p.add_argument("ckpt", metavar="CKPT", help="a finetune.py checkpoint (e.g. checkpoint-best.pt)")
    p.add_argument("--out", required=True, help="where to write the timm state dict")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--ema", dest="ema", action="store_const", const=True, default=None, help="EMA weights")
    g.add_argument("--raw", dest="ema", action="store_const", const=False, help="raw (non-EMA) weights")
    a = p.parse_args(argv)
    ckpt, state, ema = read_init(a.ckpt, a.ema, flag="export")
    cfg, args = vit_config_of(ckpt), ckpt.get("args") or {}
    if not cfg or args.get("linprobe"):
        raise SystemExit(f"export {a.ckpt}: not a finetune.py fine-tuning checkpoint (no vit_config in "
                         f"its args, or a linear probe); give a checkpoint-*.pt from finetune.py")
    model = ViT(ViTConfig(**{k: v for k, v in cfg.items() if k in ViTConfig.__dataclass_fields__})).eval()
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise SystemExit(f"export {a.ckpt}: its weights do not fit its recorded vit_config: "
                         f"{str(e)[:300]!r}") from None
    sd, kw = timm_state_dict(model)
    # check before writing: timm's own model, strict load, the same logits on a random image
    from timm.models.beit import Beit
    from timm.models.vision_transformer import VisionTransformer
    cls = Beit if "use_rel_pos_bias" in kw else VisionTransformer
    timm_kw = {k: v for k, v in kw.items() if k != "norm_eps"}
    ref = cls(**timm_kw, norm_layer=partial(nn.LayerNorm, eps=kw["norm_eps"])).eval()
    ref.load_state_dict(sd, strict=True)
    x = torch.randn(2, model.cfg.in_chans, model.cfg.img_size, model.cfg.img_size)
    with torch.no_grad():
        err = (ref(x) - model(x)).abs().max().item()
    if not err <= 1e-4:
        raise SystemExit(f"export {a.ckpt}: timm's logits differ from ours by {err:.2e}; nothing written")
    engine.atomic_save(sd, a.out)
    name, over = timm_create_args(args.get("arch"), kw)
    kwargs = ", ".join(f"{k}={v!r}" for k, v in over.items())
    norm = f"norm_layer=functools.partial(torch.nn.LayerNorm, eps={kw['norm_eps']})"
    call = (f"timm.create_model({name!r}, pretrained=False, {kwargs})" if name
            else f"{cls.__module__}.{cls.__name__}(**{timm_kw}, {norm})")
    print(f"[export] {'EMA' if ema else 'raw'} weights of {a.ckpt} (epoch {ckpt.get('epoch')}) -> "
          f"{a.out} (timm's logits = ours to {err:.1e}); load with "
          f"{call}.load_state_dict(torch.load({a.out!r}))", flush=True)
    return sd, kw


def main(argv=None):
    p = engine.Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["export"], help="export: a finetune.py checkpoint for timm")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the command's arguments (export --help)")
    a = p.parse_args(argv)
    return export(a.rest)


if __name__ == "__main__":
    main()

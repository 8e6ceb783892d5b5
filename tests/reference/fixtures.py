"""The stored expected values of the graded tests (tests/fixtures/*.pt), computed by the reference code: timm's
modules, torch's MultiheadAttention, open_clip's towers. INSTRUCTOR-ONLY (tests/reference/ never goes into a
handout): these lines compute the answers, which a handout must not hold (course/README.md, check step h).

Every fixture names the seeds of its weights (`w_seed`: expect.fill_, uniform numbers in sorted-name order)
and of its inputs (`x_seed`: torch.rand), so a test rebuilds both and compares its module's output with the
stored one. tests/reference/test_fixtures.py recomputes them all and fails when a stored one is no longer what
the reference code computes (after a timm / open_clip upgrade, say); then run

    python tests/reference/fixtures.py            # rewrites tests/fixtures/*.pt
"""
import copy
import os
import sys
import tempfile

import torch

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [TESTS, os.path.dirname(TESTS)]
from conftest import tiny_open_clip  # noqa: E402
from expect import FIXTURES, fill_  # noqa: E402


def rand(shape, seed):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def _mha(x, qkv_w, qkv_b, proj_w, proj_b, heads, bias=None):
    """torch's own multi-head attention with a qkv Linear's weights; bias (H, N, N) added to the logits."""
    mha = torch.nn.MultiheadAttention(x.shape[-1], heads, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(qkv_w)
        mha.in_proj_bias.copy_(qkv_b)
        mha.out_proj.weight.copy_(proj_w)
        mha.out_proj.bias.copy_(proj_b)
    mask = None if bias is None else bias.unsqueeze(0).expand(x.shape[0], -1, -1, -1).reshape(-1, *bias.shape[1:])
    return mha.eval()(x, x, x, attn_mask=mask, need_weights=False)[0]


@torch.no_grad()
def make_vit():
    """Assignment `vit`: timm's PatchEmbed and Block, torch's MultiheadAttention, timm's ViT-B/16 logits,
    open_clip's CLIP-B/16 and tiny CLIP towers."""
    import open_clip
    from timm.layers import PatchEmbed
    from timm.models import create_model as timm_model
    from timm.models.vision_transformer import Block
    out = {}
    pe = fill_(PatchEmbed(img_size=32, patch_size=8, in_chans=3, embed_dim=16), 11)
    x = rand((2, 3, 32, 32), 12)
    out["patch_embed"] = dict(weights=pe.state_dict(), x=x, out=pe(x))
    # attention: D 16, 4 heads, 5 tokens; a (q, k, v) bias or BEiT's (q_bias, 0, v_bias)
    for qv in (False, True):
        w = {k: rand(s, 21 + 10 * qv + i) - 0.5 for i, (k, s) in enumerate(
            [("qkv_w", (48, 16)), ("qkv_b", (48,)), ("proj_w", (16, 16)), ("proj_b", (16,))])}
        if qv:
            w["qkv_b"][16:32] = 0                                   # BEiT: k has no bias
        x, bias = rand((2, 5, 16), 23), rand((4, 5, 5), 24) * 2 - 1
        out[f"attention_qv{int(qv)}"] = dict(
            **w, x=x, bias=bias, out=_mha(x, w["qkv_w"], w["qkv_b"], w["proj_w"], w["proj_b"], 4),
            out_bias=_mha(x, w["qkv_w"], w["qkv_b"], w["proj_w"], w["proj_b"], 4, bias))
    for ls in (0.0, 0.1):
        blk = fill_(Block(16, 4, qkv_bias=True, init_values=ls or None), 31).eval()
        x, bias = rand((2, 5, 16), 32), rand((4, 5, 5), 33) * 2 - 1
        weights = {k.replace("ls1.gamma", "gamma_1").replace("ls2.gamma", "gamma_2"): v    # our names
                   for k, v in blk.state_dict().items()}
        out[f"block_ls{ls}"] = dict(weights=weights, x=x, bias=bias, out=blk(x),
                                    out_bias=blk(x, attn_mask=bias.unsqueeze(0)))
    vit_b = fill_(timm_model("vit_base_patch16_224", pretrained=False), 41).eval()
    out["vit_base"] = dict(w_seed=41, x_seed=42, logits=vit_b(rand((2, 3, 224, 224), 42)))
    with tempfile.TemporaryDirectory() as d:
        towers = {"clip_test": (tiny_open_clip(d), 32, 61), "clip_b16": (
            open_clip.create_model("ViT-B-16-quickgelu", pretrained=None), 224, 51)}
        for name, (clip, size, seed) in towers.items():
            visual = fill_(copy.deepcopy(clip.visual), seed).eval()
            visual.output_tokens = True
            pooled, tokens = visual(rand((2, 3, size, size), seed + 1))     # cls @ proj; ln_post(patch tokens)
            keep = slice(None) if name == "clip_test" else slice(None, None, 49)   # B/16: 4 of 196 tokens
            out[name] = dict(w_seed=seed, x_seed=seed + 1, pooled=pooled, tokens=tokens[:, keep],
                             token_ids=torch.arange(tokens.shape[1])[keep])
    return out


@torch.no_grad()
def make_finetune():
    """Assignment `finetune`: timm's VisionTransformer with the cls token and MAE's mean-pool + fc_norm head."""
    from timm.models.vision_transformer import VisionTransformer
    out = {}
    for pool in ("token", "avg"):
        ref = fill_(VisionTransformer(img_size=32, patch_size=8, embed_dim=64, depth=2, num_heads=2,
                                      num_classes=10, global_pool=pool), 71).eval()
        x = rand((2, 3, 32, 32), 72)
        out[f"pool_{pool}"] = dict(w_seed=71, x_seed=72, logits=ref(x),
                                   pre_logits=ref.forward_head(ref.forward_features(x), pre_logits=True))
    return out


@torch.no_grad()
def make_maskdistill():
    """Assignment `maskdistill`: open_clip's tokens of the tiny CLIP (last block, ln_post, ln_post @ proj) and an
    MAE encoder's (its blocks, before and after its final norm)."""
    import maskdistill as md
    from vit import create_model
    out = {}
    with tempfile.TemporaryDirectory() as d:
        visual = fill_(copy.deepcopy(tiny_open_clip(d).visual), 81).eval()
    imgs = rand((3, 3, 32, 32), 82)
    seen = {}
    hook = visual.transformer.resblocks[-1].register_forward_hook(lambda m, i, o: seen.update(raw=o))
    visual.output_tokens = True
    _, tokens = visual(md.normalize_image(imgs, "clip"))                  # open_clip: ln_post(h)[:, 1:]
    hook.remove()
    out["teacher_clip"] = dict(w_seed=81, x_seed=82, raw=seen["raw"][:, 1:], ln=tokens, proj=tokens @ visual.proj)
    enc = fill_(create_model("vit_test", pos_embed="sincos", num_classes=0), 91).eval()
    seen = {}
    hook = enc.blocks[-1].register_forward_hook(lambda m, i, o: seen.update(raw=o))
    final = enc.forward_features(md.normalize_image(rand((2, 3, 32, 32), 92), "imagenet"))
    hook.remove()
    out["teacher_mae"] = dict(w_seed=91, x_seed=92, raw=seen["raw"][:, 1:], ln=final[:, 1:])
    return out


MAKERS = {"vit": make_vit, "finetune": make_finetune, "maskdistill": make_maskdistill}


def own(obj):
    """Each tensor its own copy (a view would save its whole storage)."""
    if isinstance(obj, dict):
        return {k: own(v) for k, v in obj.items()}
    return obj.detach().clone().contiguous() if isinstance(obj, torch.Tensor) else obj


def main():
    os.makedirs(FIXTURES, exist_ok=True)
    for name, make in MAKERS.items():
        path = os.path.join(FIXTURES, f"{name}.pt")
        torch.save(own(make()), path)
        print(f"wrote {path} ({os.path.getsize(path) / 1024:.0f} KB)")


if __name__ == "__main__":
    main()

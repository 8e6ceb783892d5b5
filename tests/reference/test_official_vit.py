"""vit.py against the official code itself: timm's ViT-B/16 and BEiT, open_clip's CLIP towers, on the same
weights and images (the graded tests compare with these outputs stored: tests/fixtures/vit.pt).
INSTRUCTOR-ONLY: tests/reference/ never goes into a handout (it shows how the reference code computes the
answers)."""
import pytest
import torch

from test_vit import _with_random_rpe      # random RPE tables: their init is zeros, a mis-mapped one would hide
from vit import create_model
from weights import load_clip_state_dict


def test_timm_vit_base_gives_the_same_logits():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    ours = create_model("vit_base_patch16").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)          # same names, same shapes, nothing missing
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4, msg=lambda m: (
            f"ViT §3.1: expected timm's vit_base_patch16_224 logits from the same weights\n{m}"))


def _compare_clip(clip_model, name, img_size):
    ours = create_model(name).eval()
    load_clip_state_dict(ours, clip_model.state_dict())           # full model: text tower ignored
    x = torch.randn(2, 3, img_size, img_size, generator=torch.Generator().manual_seed(1))
    clip_model.visual.output_tokens = True
    try:
        with torch.no_grad():
            pooled_ref, tokens_ref = clip_model.visual(x)         # tokens: after ln_post, not projected
            tokens = ours.forward_features(x)                     # (B, 1+N, D) after the final norm
            pooled = ours(x)                                      # num_classes=0: cls @ proj
    finally:
        clip_model.visual.output_tokens = False
    err = (tokens[:, 1:] - tokens_ref).abs().max()
    assert err <= 1e-4, f"ViT §3.1: {name}: expected open_clip's patch tokens (ln_post), max |diff| {err:.3g}"
    err = (pooled - pooled_ref).abs().max()
    assert err <= 1e-4, f"ViT §3.1: {name}: expected open_clip's pooled cls @ proj, max |diff| {err:.3g}"
    with torch.no_grad():                                         # and the full CLIP image embedding
        err = (pooled - clip_model.encode_image(x)).abs().max()
        assert err <= 1e-4, f"ViT §3.1: {name}: expected open_clip's encode_image, max |diff| {err:.3g}"


def test_clip_b16_equals_open_clip_vit_b16_quickgelu(openclip_b16):
    _compare_clip(openclip_b16, "clip_b16", 224)


def test_tiny_clip_equals_open_clip_tiny_config(tiny_clip):
    _compare_clip(tiny_clip[0], "clip_test", 32)


@pytest.mark.parametrize("shared", [False, True])
def test_rpe_vit_equals_timm_beit_with_the_same_weights(shared):
    """timm's Beit (a port of BEiT's modeling_finetune.py): per-block tables (use_rel_pos_bias, BEiT v2 fine-tuning) or
    one shared table; the same names and shapes (timm's beitv2_base_patch16_224 too), and the same logits."""
    Beit = pytest.importorskip("timm.models.beit").Beit
    torch.manual_seed(0)
    ref = Beit(img_size=32, patch_size=8, num_classes=10, embed_dim=64, depth=2, num_heads=2, init_values=0.1,
               use_abs_pos_emb=False, use_rel_pos_bias=not shared, use_shared_rel_pos_bias=shared, head_init_scale=1.0).eval()
    _with_random_rpe(ref)
    ours = create_model("vit_test", rel_pos_bias=True, shared_rel_pos_bias=shared, qv_bias=True, layer_scale=0.1,
                        pos_embed="none", global_pool="avg").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.forward_features(x), ref.forward_features(x), atol=1e-5, rtol=1e-5)   # all tokens
        torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-5)

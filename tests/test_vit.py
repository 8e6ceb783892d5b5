"""vit.py is proven equal to real reference code (open_clip, timm) and to the papers' formulas."""
import math
import subprocess
import sys

import pytest
import torch

from vit import (PRESETS, RelativePositionBias, ViTConfig, clip_to_vit_state_dict, count_params_and_flops,
                 create_model, drop_path, load_clip_state_dict, load_pretrained, resize_pos_embed,
                 sincos_pos_embed_2d)


def test_sdpa_equals_written_out_attention_with_and_without_rel_pos_bias():
    torch.manual_seed(0)
    for kw in [{}, dict(rel_pos_bias=True, qv_bias=True, layer_scale=0.1)]:
        fused = create_model("vit_test", **kw).eval()
        with torch.no_grad():                       # a non-zero RPE table so the bias path is exercised
            if fused.rel_pos_bias is not None:
                fused.rel_pos_bias.relative_position_bias_table.normal_()
        manual = create_model("vit_test", fused_attn=False, **kw).eval()
        manual.load_state_dict(fused.state_dict())
        x = torch.randn(3, 3, 32, 32)
        torch.testing.assert_close(fused(x), manual(x), atol=1e-5, rtol=1e-5)


def test_timm_vit_base_state_dict_loads_strictly_and_gives_same_logits():
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    ref = timm.create_model("vit_base_patch16_224", pretrained=False).eval()
    ours = create_model("vit_base_patch16").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)          # same names, same shapes, nothing missing
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), atol=1e-4, rtol=1e-4)


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
    assert (tokens[:, 1:] - tokens_ref).abs().max() <= 1e-4
    assert (pooled - pooled_ref).abs().max() <= 1e-4
    with torch.no_grad():                                         # and the full CLIP image embedding
        assert (pooled - clip_model.encode_image(x)).abs().max() <= 1e-4


def test_clip_b16_reproduces_open_clip_vit_b16_quickgelu(openclip_b16):
    _compare_clip(openclip_b16, "clip_b16", 224)


def test_tiny_clip_reproduces_open_clip_tiny_config(tiny_clip):
    _compare_clip(tiny_clip[0], "clip_test", 32)


def test_load_clip_visual_only_and_file_state_dicts(tiny_clip):
    model, path = tiny_clip
    visual_only = model.visual.state_dict()
    from_file = torch.load(path, weights_only=True)
    a, b = create_model("clip_test"), create_model("clip_test")
    load_clip_state_dict(a, visual_only)
    load_clip_state_dict(b, {"module." + k: v for k, v in from_file.items()})   # DDP-prefixed full model
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k
    # the rename is the documented one: qkv rows are in_proj's q|k|v, proj is transposed
    sd = clip_to_vit_state_dict(visual_only)
    assert torch.equal(sd["blocks.0.attn.qkv.weight"], visual_only["transformer.resblocks.0.attn.in_proj_weight"])
    assert torch.equal(sd["proj.weight"], visual_only["proj"].t())
    assert sd["cls_token"].shape == (1, 1, 64) and sd["pos_embed"].shape == (1, 17, 64)


def test_load_clip_mismatch_names_the_keys(tiny_clip):
    sd = dict(tiny_clip[0].visual.state_dict())
    del sd["ln_pre.weight"]
    sd["transformer.resblocks.0.attn.extra"] = torch.zeros(1)
    with pytest.raises(ValueError, match=r"norm_pre\.weight.*blocks\.0\.attn\.extra"):
        load_clip_state_dict(create_model("clip_test"), sd)
    with pytest.raises(ValueError, match="patch_embed.proj.weight"):          # wrong architecture: shapes named
        load_clip_state_dict(create_model("clip_test", embed_dim=32, num_heads=1), tiny_clip[0].visual.state_dict())


def test_ftclip_head_drops_ln_post_and_proj_and_pools_ln_then_mean(tiny_clip):
    ft = create_model("clip_test", global_pool="ln_avg", proj_dim=0, num_classes=5)
    dropped = load_clip_state_dict(ft, tiny_clip[0].state_dict())
    assert sorted(dropped) == ["norm.bias", "norm.weight", "proj.weight"]
    with torch.no_grad():
        ft.fc_norm.weight.normal_(); ft.fc_norm.bias.normal_()
        x = torch.randn(2, 3, 32, 32)
        tokens = ft.forward_features(x)
        feat = ft.fc_norm(tokens[:, 1:]).mean(1)                  # LN on each patch token, then mean
        torch.testing.assert_close(ft(x), ft.head(feat))
        mae = create_model("vit_test", global_pool="avg")          # MAE: mean first, then LN
        mae.fc_norm.weight.normal_()
        t = mae.forward_features(x)
        torch.testing.assert_close(mae(x), mae.head(mae.fc_norm(t[:, 1:].mean(1))))


def test_clip_at_another_resolution_resizes_positions_like_timm(tiny_clip):
    timm_pe = pytest.importorskip("timm.layers").resample_abs_pos_embed
    big = create_model("clip_test", img_size=48)                  # 4x4 grid -> 6x6 grid
    load_clip_state_dict(big, tiny_clip[0].state_dict())
    src = clip_to_vit_state_dict(tiny_clip[0].state_dict())["pos_embed"]
    ref = timm_pe(src, (6, 6), num_prefix_tokens=1, interpolation="bicubic", antialias=False)
    torch.testing.assert_close(big.pos_embed.data, ref)
    assert torch.equal(big.pos_embed.data[:, 0], src[:, 0])      # cls row kept as is
    assert torch.equal(resize_pos_embed(src, (4, 4)), src)      # same grid: untouched


@pytest.mark.parametrize("ours,timm_name", [("vit_tiny_patch16", "vit_tiny_patch16_224"),
                                           ("vit_small_patch16", "vit_small_patch16_224"),
                                           ("vit_base_patch16", "vit_base_patch16_224"),
                                           ("vit_large_patch16", "vit_large_patch16_224"),
                                           ("vit_huge_patch14", "vit_huge_patch14_224"),
                                           ("eva_g14", "eva_giant_patch14_224")])
def test_param_counts_equal_timm(ours, timm_name):
    timm = pytest.importorskip("timm")
    with torch.device("meta"):
        ref = timm.create_model(timm_name, pretrained=False, num_classes=1000)
        model = create_model(ours)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("ours,width,layers,heads,patch,out", [("clip_b16", 768, 12, 12, 16, 512),
                                                               ("clip_l14", 1024, 24, 16, 14, 768)])
def test_param_counts_equal_open_clip_vision_towers(ours, width, layers, heads, patch, out):
    from open_clip.transformer import VisionTransformer
    with torch.device("meta"):
        ref = VisionTransformer(image_size=224, patch_size=patch, width=width, layers=layers, heads=heads,
                                mlp_ratio=4.0, output_dim=out)
        model = create_model(ours)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in ref.parameters())


@pytest.mark.parametrize("name,img,paper", [("clip_b16", 224, 17.5), ("clip_b16", 384, 55.4),     # FT-CLIP Table 11
                                            ("clip_l14", 224, 80.7), ("clip_l14", 336, 190.6),
                                            ("vit_large_patch16", 384, 190.7),
                                            ("vit_large_patch16", 224, 61.6)])             # MAE's ViT-L/16 (DeiT/timm count)
def test_gflops_within_2_percent_of_papers(name, img, paper):
    _, gflops = count_params_and_flops(name, img)
    assert abs(gflops - paper) / paper <= 0.02, gflops


def test_eva_g14_matches_eva_table_3a():
    params, _ = count_params_and_flops("eva_g14")
    cfg = ViTConfig(**PRESETS["eva_g14"])
    assert (cfg.patch_size, cfg.depth, cfg.embed_dim, cfg.mlp_dim, cfg.num_heads) == (14, 40, 1408, 6144, 16)
    assert abs(params - 1000 * 1408 - 1000 - 1011e6) / 1011e6 < 0.001       # "1011M" excludes the IN-1k head


def test_sincos_matches_mae_formula_hand_computed():
    D, G = 16, 3
    pe = sincos_pos_embed_2d(D, G, G)                              # (1+9, 16)
    assert pe.shape == (1 + G * G, D) and pe[0].abs().sum() == 0   # zero cls row
    assert torch.equal(pe[1], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4))   # patch (0,0)
    # token t = i*G + j = 1 + (1*3 + 2): row i=1, column j=2; omega_k = 10000^(-k/4)
    t = pe[1 + 1 * G + 2]
    for k in range(4):
        w = 10000 ** (-k / 4)
        assert math.isclose(t[k], math.sin(2 * w), abs_tol=1e-6)           # first half: column j
        assert math.isclose(t[4 + k], math.cos(2 * w), abs_tol=1e-6)
        assert math.isclose(t[8 + k], math.sin(1 * w), abs_tol=1e-6)       # second half: row i
        assert math.isclose(t[12 + k], math.cos(1 * w), abs_tol=1e-6)
    m = create_model("vit_test", pos_embed="sincos")
    assert not m.pos_embed.requires_grad and torch.equal(m.pos_embed.data[0], sincos_pos_embed_2d(64, 4, 4))


def test_mask_token_all_false_equals_no_mask_and_masking_changes_output():
    torch.manual_seed(0)
    m = create_model("vit_test", mask_token=True).eval()
    x = torch.randn(2, 3, 32, 32)
    none = m.forward_features(x)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    assert torch.equal(m.forward_features(x, mask), none)
    mask[:, 3] = True
    out = m.forward_features(x, mask)
    assert not torch.allclose(out, none)
    # the masked patch's own pixels no longer matter: changing them leaves the output unchanged
    x2 = x.clone()
    x2[:, :, 0:8, 24:32] += 1.0                                    # patch 3 = row 0, column 3
    torch.testing.assert_close(m.forward_features(x2, mask), out)


def test_relative_position_bias_table_and_index_for_14x14():
    rpb = RelativePositionBias((14, 14), num_heads=12)
    idx = rpb.relative_position_index
    assert rpb.relative_position_bias_table.shape == (732, 12)    # 27*27 + 3
    assert idx.shape == (197, 197) and idx.min() == 0 and idx.max() == 731
    assert idx[0, 0] == 731 and idx[0, 5] == 729 and idx[5, 0] == 730
    assert idx[1, 1] == 13 * 27 + 13                               # zero offset: table centre
    assert idx[1, 2] == 13 * 27 + 12                               # (r,c)=(0,0) vs (0,1): dc = -1
    assert idx[1 + 14, 1] == 14 * 27 + 13                          # (1,0) vs (0,0): dr = +1
    assert len(torch.unique(idx[1:, 1:])) == 27 * 27


def test_qv_bias_equals_qkv_bias_with_zero_k_bias():
    torch.manual_seed(0)
    beit = create_model("vit_test", qv_bias=True).eval()
    with torch.no_grad():
        for blk in beit.blocks:
            blk.attn.q_bias.normal_(); blk.attn.v_bias.normal_()
    plain = create_model("vit_test").eval()
    sd = {k: v for k, v in beit.state_dict().items() if "q_bias" not in k and "v_bias" not in k}
    for i, blk in enumerate(beit.blocks):
        sd[f"blocks.{i}.attn.qkv.bias"] = torch.cat([blk.attn.q_bias, torch.randn(64), blk.attn.v_bias])  # any k bias
    plain.load_state_dict(sd)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(beit(x), plain(x), atol=1e-5, rtol=1e-5)


def test_drop_path_identity_in_eval_and_unbiased_in_train():
    x = torch.ones(10000, 4)
    assert torch.equal(drop_path(x, 0.3, training=False), x)
    y = drop_path(x, 0.3, training=True)
    kept = y[:, 0] != 0
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))    # survivors rescaled by 1/(1-p)
    assert abs(kept.float().mean() - 0.7) < 0.02
    m = create_model("vit_test", depth=4, drop_path=0.3)
    assert [b.drop_path for b in m.blocks] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_parameter_names_follow_timm_mae():
    keys = set(create_model("vit_test", global_pool="avg").state_dict())
    for k in ["patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight",
              "blocks.1.attn.proj.bias", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight", "blocks.1.mlp.fc2.bias",
              "fc_norm.weight", "head.weight"]:
        assert k in keys


def test_load_pretrained_resizes_drops_head_and_names_bad_keys():
    src = create_model("vit_test", num_classes=10)
    dst = create_model("vit_test", img_size=48, num_classes=3, global_pool="avg")
    dropped = load_pretrained(dst, {"module." + k: v for k, v in src.state_dict().items()})
    assert set(dropped) == {"head.weight", "head.bias", "norm.weight", "norm.bias"}
    assert torch.equal(dst.blocks[1].mlp.fc2.weight, src.blocks[1].mlp.fc2.weight)
    with pytest.raises(ValueError, match="blocks.1.mlp.fc1.weight"):
        load_pretrained(create_model("vit_test", depth=1), src.state_dict())


def test_unknown_model_and_field_errors_list_the_choices():
    with pytest.raises(ValueError, match="clip_b16.*eva_g14"):
        create_model("vit_gigantic")
    with pytest.raises(ValueError, match="embed_dim"):
        create_model("vit_test", width=3)


def test_cli_help_and_report(tmp_path):
    out = subprocess.run([sys.executable, "vit.py", "--model", "clip_b16", "--img_size", "224"],
                         capture_output=True, text=True, check=True).stdout
    assert "86.19 M" in out and "17.56" in out
    for script in ["vit.py", "masking.py"]:
        assert subprocess.run([sys.executable, script, "--help"], capture_output=True).returncode == 0

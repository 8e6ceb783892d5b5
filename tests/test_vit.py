"""vit.py is proven equal to real reference code (open_clip, timm) and to the papers' formulas."""
import copy
import subprocess
import sys

import pytest
import torch

import weights
from expect import came, fill_, fixture
from vit import PRESETS, RelativePositionBias, ViTConfig, count_params_and_flops, create_model, drop_path, sincos_pos_embed_2d
from weights import clip_to_vit_state_dict, load_clip_state_dict, load_pretrained, resize_pos_embed

VIT = fixture("vit")       # the reference code's outputs (tests/reference/fixtures.py)


def test_sdpa_equals_written_out_attention_with_and_without_rel_pos_bias():
    torch.manual_seed(0)
    for kw in [{}, dict(rel_pos_bias=True, qv_bias=True, layer_scale=0.1),
               dict(rel_pos_bias=True, shared_rel_pos_bias=False, qv_bias=True, layer_scale=0.1)]:
        fused = create_model("vit_test", **kw).eval()
        with torch.no_grad():                       # non-zero RPE tables (shared or per block): the bias path is exercised
            for name, p in fused.named_parameters():
                if name.endswith("relative_position_bias_table"):
                    p.normal_()
        manual = create_model("vit_test", fused_attn=False, **kw).eval()
        manual.load_state_dict(fused.state_dict())
        x = torch.randn(3, 3, 32, 32)
        torch.testing.assert_close(fused(x), manual(x), atol=1e-5, rtol=1e-5)


def test_timm_vit_base_state_dict_loads_strictly_and_gives_same_logits():
    timm = pytest.importorskip("timm")
    ref = fill_(timm.create_model("vit_base_patch16_224", pretrained=False), 41)
    ours = create_model("vit_base_patch16").eval()
    ours.load_state_dict(ref.state_dict(), strict=True)          # same names, same shapes, nothing missing
    f = VIT["vit_base"]                                           # timm's logits for these weights and images
    with torch.no_grad():
        got = ours(torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(f["x_seed"])))
    torch.testing.assert_close(got, f["logits"], atol=1e-4, rtol=1e-4, msg=lambda m: (
        f"ViT §3.1: expected timm's vit_base_patch16_224 logits from the same weights; {came(got, f['logits'])}"
        f"\n{m}"))


def _compare_clip(clip_model, name, img_size):
    """Our tower with open_clip's weights (filled from the fixture's seed) against open_clip's own outputs."""
    f = VIT[name]
    visual = fill_(copy.deepcopy(clip_model.visual), f["w_seed"])
    ours = create_model(name).eval()
    load_clip_state_dict(ours, visual.state_dict())
    x = torch.rand(2, 3, img_size, img_size, generator=torch.Generator().manual_seed(f["x_seed"]))
    with torch.no_grad():
        tokens = ours.forward_features(x)[:, 1:][:, f["token_ids"]]      # (B, N, D) after the final norm
        pooled = ours(x)                                               # num_classes=0: cls @ proj
    torch.testing.assert_close(tokens, f["tokens"], atol=1e-4, rtol=1e-4, msg=lambda m: (
        f"ViT §3.1: {name}: expected open_clip's patch tokens (after ln_post); {came(tokens, f['tokens'])}\n{m}"))
    torch.testing.assert_close(pooled, f["pooled"], atol=1e-4, rtol=1e-4, msg=lambda m: (
        f"ViT §3.1: {name}: expected open_clip's image embedding (cls @ proj); {came(pooled, f['pooled'])}\n{m}"))


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
    assert sorted(dropped) == ["norm.bias", "norm.weight", "proj.weight"], (
        f"FT-CLIP §2.1: expected ln_post and proj dropped, got {sorted(dropped)}")
    # by hand (fc_norm without affine, eps 1e-6): cls [9, 9, 9, 9] (dropped), patches [1, 2, 3, 4], [2, 2, 2, 6]
    x = torch.tensor([[[9.0, 9.0, 9.0, 9.0], [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 6.0]]])
    want = {"ln_avg": [-0.9594952, -0.5122818, -0.0650684, 1.5368454],   # FT-CLIP: mean of LN(patch 1), LN(patch 2)
            "avg": [-0.9284764, -0.5570859, -0.1856953, 1.6712576]}      # MAE: LN([1.5, 2, 2.5, 5])
    for pool, who in (("ln_avg", "FT-CLIP §2.1"), ("avg", "MAE App. A.1")):
        m = create_model("vit_test", embed_dim=4, num_heads=1, global_pool=pool)
        with torch.no_grad():
            got = m.pool_patches(x)
        assert torch.allclose(got, torch.tensor([want[pool]]), atol=1e-6), (
            f"{who}: global_pool '{pool}' of a hand-made (1, 1 + 2, 4) input: expected {want[pool]} "
            f"({'fc_norm on each patch token, then the mean' if pool == 'ln_avg' else 'the mean, then fc_norm'}, "
            f"cls dropped); {came(got, torch.tensor([want[pool]]))}")
    with torch.no_grad():                                         # and the head sits on the pooled feature
        x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        feats = ft.pool_patches(ft.forward_features(x))
        assert torch.allclose(ft(x), ft.head(feats), atol=1e-6), (
            "FT-CLIP §2.1: expected the logits to be head(pool_patches(forward_features(x))); "
            f"{came(ft(x), ft.head(feats))}")


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
    assert pe.shape == (1 + G * G, D) and pe[0].abs().sum() == 0, (   # zero cls row
        f"MAE App. A.1: expected (1 + 9, 16) with a zero cls row, got {tuple(pe.shape)}, cls row "
        f"{pe[0].tolist()}")
    assert torch.equal(pe[1], torch.tensor([0.0] * 4 + [1.0] * 4 + [0.0] * 4 + [1.0] * 4)), (   # patch (0,0)
        f"MAE App. A.1: patch (0, 0): expected [sin 0]*4 + [cos 0]*4 twice, got {pe[1].tolist()}")
    # token 1 + (1*3 + 2): row i = 1, column j = 2; w_k = 10000^(-k/4) = 1, 0.1, 0.01, 0.001; by hand:
    # [sin(2 w), cos(2 w)] of the column, then [sin(1 w), cos(1 w)] of the row
    want = torch.tensor([0.9092974, 0.1986693, 0.0199987, 0.0020000, -0.4161468, 0.9800666, 0.9998000, 0.9999980,
                         0.8414710, 0.0998334, 0.0099998, 0.0010000, 0.5403023, 0.9950042, 0.9999500, 0.9999995])
    t = pe[1 + 1 * G + 2]
    assert torch.allclose(t, want, atol=1e-6), (                   # first half: column j, second half: row i
        f"MAE App. A.1: patch (row 1, column 2): expected [sin(2 w), cos(2 w), sin(w), cos(w)], w = 10000^(-k/4): "
        f"{came(t, want)}")
    m = create_model("vit_test", pos_embed="sincos")
    frozen_table = not m.pos_embed.requires_grad
    table = sincos_pos_embed_2d(64, 4, 4)
    assert frozen_table and torch.equal(m.pos_embed.data[0], table), (
        "MAE App. A.1: expected ViT(pos_embed='sincos') to hold sincos_pos_embed_2d(64, 4, 4), frozen; got "
        f"requires_grad {not frozen_table}, {came(m.pos_embed.data[0], table)}")


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
    got, want = beit(x), plain(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=lambda m: (
        "BEiT q/v bias: expected the same logits as a qkv bias (q_bias, any k bias, v_bias): the k bias is "
        f"0; {came(got, want)}\n{m}"))


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


# ----------------------------------------------------------------------------- relative position bias: per block, resized

def _beit_fixture_table(S, heads=2):
    """(S*S + 3, heads) float32: head 0 a smooth surface, head 1 a rough one (rows dr, columns dc); cls rows 7, 8, 9."""
    i, j = torch.meshgrid(torch.arange(S, dtype=torch.float64), torch.arange(S, dtype=torch.float64), indexing="ij")
    h = [torch.sin(0.37 * i) * torch.cos(0.23 * j) + 0.05 * (i - j), ((7 * i + 13 * j) % 11) / 10 - 0.5][:heads]
    cls = torch.tensor([[7.0], [8.0], [9.0]], dtype=torch.float64).expand(3, heads)
    return torch.cat([torch.stack([t.flatten() for t in h], 1), cls]).float()


def test_cubic_spline_reproduces_cubics_and_interpolates_the_knots():
    x = torch.tensor([-4.75, -2.5, -1.0, 0.0, 1.0, 2.5, 4.75, 6.0], dtype=torch.float64)   # non-uniform, as BEiT's
    xq = torch.linspace(-4.75, 6.0, 37, dtype=torch.float64)
    p = lambda t: 0.3 * t ** 3 - 1.2 * t ** 2 + 0.5 * t - 2.0                              # noqa: E731
    W = weights.cubic_spline_matrix(x, xq)                                                      # (37, 8)
    torch.testing.assert_close(W @ p(x), p(xq), atol=1e-10, rtol=0)       # not-a-knot reproduces any cubic
    torch.testing.assert_close(weights.cubic_spline_matrix(x, x), torch.eye(8, dtype=torch.float64), atol=1e-12, rtol=0)
    y = torch.randn(8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(weights.cubic_spline_matrix(x, [-9.0, 99.0]) @ y, y[[0, -1]], atol=1e-12, rtol=0)  # clamped
    with pytest.raises(ValueError, match="at least 4"):
        weights.cubic_spline_matrix(x[:3], xq)


@pytest.mark.parametrize("G,G2,picks,expected", [
    # BEiT's case: 224 -> 384 at /16, 14x14 -> 24x24 grid, table 27x27 -> 47x47 (q = 1.0903074455...)
    (14, 24, [(3, 44), (23, 23), (30, 11), (23, 40), (12, 5), (46, 0), (29, 17)],
     [[-0.868038083978749, 0.983826220035553, 1.00481783591057, -1.21808585324948, 1.03416689485925, 1.10601568222046,
       0.402850596024844],
      [-0.0798733493251169, 0.200000002980232, -0.174854009177998, 0.13577974559326, 0.0576657346295597,
       0.100000001490116, 0.508083539739896]]),
    # vit_test's 32 -> 48 px, 4x4 -> 6x6: q hits BEiT's cap 1.5, the outer offsets +-5 lie beyond +-4.75 (clamped)
    (4, 6, [(0, 0), (5, 5), (1, 9), (10, 3), (4, 7)],
     [[0.0, 0.690804064273834, -0.236779519530619, 1.00048246195097, 0.177987392696943]])])
def test_rel_pos_bias_resize_equals_scipy_interp2d_as_beit_v2_calls_it(G, G2, picks, expected):
    """Pinned numbers: BEiT v2's run_class_finetuning.py interpolation restated with SciPy 1.13.1's
    interp2d(x, y, z, kind='cubic') on the same float32 table (cross-checked with SciPy 1.17.1's
    RectBivariateSpline(kx=3, ky=3, s=0) and make_interp_spline on each axis: equal to 1.4e-15). SciPy is not a
    dependency; the numbers were computed once in a throwaway environment."""
    table = _beit_fixture_table(2 * G - 1, heads=len(expected))
    out = weights.resize_rel_pos_bias(table.double(), (G2, G2))
    S2 = 2 * G2 - 1
    assert out.shape == (S2 * S2 + 3, len(expected))
    for h, values in enumerate(expected):
        grid = out[:-3, h].reshape(S2, S2)
        assert [grid[r, c].item() for r, c in picks] == pytest.approx(values, abs=1e-12), h
    assert torch.equal(out[-3:], table[-3:].double())                            # cls rows appended back unchanged
    f32 = weights.resize_rel_pos_bias(table, (G2, G2))                               # float32 in, float32 out, as BEiT
    assert f32.dtype == torch.float32 and torch.equal(f32, out.float())
    src, new = table[:-3].reshape(2 * G - 1, 2 * G - 1, -1), f32[:-3].reshape(S2, S2, -1)
    c, c2 = G - 1, G2 - 1                                                        # offsets 0, +-1 are knots: kept
    assert torch.equal(new[c2 - 1:c2 + 2, c2 - 1:c2 + 2], src[c - 1:c + 2, c - 1:c + 2])
    assert weights.resize_rel_pos_bias(table, (G, G)) is table                       # same grid: untouched


def _with_random_rpe(model, seed=0):
    """Random relative-position tables (init is zeros: a mis-mapped table would hide)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("relative_position_bias_table"):
                p.copy_(torch.randn(p.shape, generator=g))
    return model


def test_per_block_rpe_lives_in_each_block_and_a_shared_table_is_copied_into_all(capsys):
    torch.manual_seed(0)
    shared = _with_random_rpe(create_model("vit_test", rel_pos_bias=True, qv_bias=True, layer_scale=0.1, depth=3)).eval()
    per_block = create_model("vit_test", rel_pos_bias=True, shared_rel_pos_bias=False, qv_bias=True, layer_scale=0.1,
                             depth=3).eval()
    keys = set(per_block.state_dict())
    assert per_block.rel_pos_bias is None and "rel_pos_bias.relative_position_bias_table" not in keys
    assert {f"blocks.{i}.attn.relative_position_bias_table" for i in range(3)} <= keys   # BEiT v2 / timm Beit names
    assert not any("relative_position_index" in k for k in keys)                 # derived, not saved
    load_pretrained(per_block, shared.state_dict())
    assert "copied into each of the 3 blocks" in capsys.readouterr().out
    for blk in per_block.blocks:
        assert torch.equal(blk.attn.relative_position_bias_table, shared.rel_pos_bias.relative_position_bias_table)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(per_block(x), shared(x))                              # the same model before any training
    with pytest.raises(ValueError, match="without --shared_rel_pos_bias"):           # per-block -> shared cannot be merged
        load_pretrained(create_model("vit_test", rel_pos_bias=True, depth=3), per_block.state_dict())


def test_load_pretrained_resizes_rel_pos_tables_to_a_new_grid():
    lines = []
    src = _with_random_rpe(create_model("vit_test", rel_pos_bias=True, num_classes=0))     # 32 px: 4x4, table 52 x 2
    for shared in (True, False):
        dst = create_model("vit_test", img_size=48, rel_pos_bias=True, shared_rel_pos_bias=shared)   # 6x6: 124 x 2
        load_pretrained(dst, src.state_dict(), log=lines.append)
        want = weights.resize_rel_pos_bias(src.rel_pos_bias.relative_position_bias_table.data, (6, 6))
        tables = [dst.rel_pos_bias] if shared else [b.attn for b in dst.blocks]
        for t in tables:
            assert t.relative_position_bias_table.shape == (124, 2)
            assert torch.equal(t.relative_position_bias_table.data, want)
    assert lines[0] == lines[1] == ("[weights] relative position bias 7x7 -> 11x11 offsets (grid 6x6; BEiT v2's bicubic "
                                    "interpolation on geometric coordinates)")



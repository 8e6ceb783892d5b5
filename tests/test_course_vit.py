"""Graded tests of the course assignment `vit` (course/assignments.py) that test_vit.py did not have: each
piece against the outputs the reference code computed (timm's modules, torch.nn.MultiheadAttention; stored in
tests/fixtures/vit.pt by tests/reference/fixtures.py) and the papers' formulas by hand."""
import pytest
import torch

from expect import came, fixture
from vit import Attention, Block, PatchEmbed, ViTConfig, sincos_pos_embed_2d

VIT = fixture("vit")


def test_patch_embed_equals_timm_patch_embed():
    f = VIT["patch_embed"]                                         # timm's PatchEmbed(32, 8, 3, 16)
    ours = PatchEmbed(32, 8, 3, 16)
    ours.load_state_dict(f["weights"])                             # proj.weight, proj.bias
    out = ours(f["x"])
    assert out.shape == (2, 16, 16), f"ViT Eq. 1: expected (B, N, D) = (2, 16, 16), got {tuple(out.shape)}"
    torch.testing.assert_close(out, f["out"], atol=1e-5, rtol=1e-5, msg=lambda m: (
        "ViT Eq. 1: expected timm's patch embedding (patches row-major: token 1 is row 0, column 1); "
        f"{came(out, f['out'])}\n{m}"))


# MAE App. A.1's table for D = 8 on a 2 x 3 grid, by hand: w = (1, 0.01) (10000^(-k / (D/4)), k = 0, 1);
# channels [sin(j w), cos(j w)] of the column j, then [sin(i w), cos(i w)] of the row i; token 1 + i*3 + j.
SINCOS_8_2x3 = [[0.0] * 8,                                                                   # cls
                [0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0],                                    # (0, 0)
                [0.8414710, 0.0099998, 0.5403023, 0.9999500, 0.0, 0.0, 1.0, 1.0],            # (0, 1)
                [0.9092974, 0.0199987, -0.4161468, 0.9998000, 0.0, 0.0, 1.0, 1.0],           # (0, 2)
                [0.0, 0.0, 1.0, 1.0, 0.8414710, 0.0099998, 0.5403023, 0.9999500],            # (1, 0)
                [0.8414710, 0.0099998, 0.5403023, 0.9999500, 0.8414710, 0.0099998, 0.5403023, 0.9999500],
                [0.9092974, 0.0199987, -0.4161468, 0.9998000, 0.8414710, 0.0099998, 0.5403023, 0.9999500]]


def test_sincos_rows_and_columns_on_a_non_square_grid():
    D, Gh, Gw = 8, 2, 3
    pe = sincos_pos_embed_2d(D, Gh, Gw)
    assert pe.shape == (1 + Gh * Gw, D) and pe.dtype == torch.float32 and not pe[0].any(), (
        f"MAE App. A.1: expected a float32 (1 + Gh*Gw, D) = (7, 8) table with a zero cls row, got {pe.dtype} "
        f"{tuple(pe.shape)}, cls row {pe[0].tolist()}")
    no_cls = sincos_pos_embed_2d(D, Gh, Gw, cls_token=False)
    assert no_cls.shape == (Gh * Gw, D), (
        f"MAE App. A.1: cls_token=False: expected (6, 8), got {tuple(no_cls.shape)}")
    want = torch.tensor(SINCOS_8_2x3)
    for t in range(1, 1 + Gh * Gw):
        i, j = divmod(t - 1, Gw)
        assert torch.allclose(pe[t], want[t], atol=1e-6), (
            f"MAE App. A.1: token {t} (row {i}, column {j}): expected [sin(j w), cos(j w), sin(i w), cos(i w)] "
            f"with w = (1, 0.01) = {want[t].tolist()}; {came(pe[t], want[t])}")


def _attention(f, fused, qv_bias):
    attn = Attention(16, 4, qkv_bias=True, qv_bias=qv_bias, fused=fused)
    with torch.no_grad():
        attn.proj.weight.copy_(f["proj_w"])
        attn.proj.bias.copy_(f["proj_b"])
        attn.qkv.weight.copy_(f["qkv_w"])
        if qv_bias:                                                # BEiT: (q_bias, 0, v_bias)
            attn.q_bias.copy_(f["qkv_b"][:16])
            attn.v_bias.copy_(f["qkv_b"][32:])
        else:
            attn.qkv.bias.copy_(f["qkv_b"])
    return attn.eval()


@pytest.mark.parametrize("fused", [True, False])
def test_attention_equals_the_formula_fused_and_written_out(fused):
    for qv_bias in (False, True):
        f = VIT[f"attention_qv{int(qv_bias)}"]                     # torch's MultiheadAttention computed these
        attn = _attention(f, fused, qv_bias)
        with torch.no_grad():
            for b, want in ((None, f["out"]), (f["bias"], f["out_bias"])):
                got = attn(f["x"], b)
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=lambda m: (
                    f"ViT App. A Eq. 5-8: fused={fused}, BEiT q/v bias {qv_bias}, attn_bias "
                    f"{'given' if b is not None else 'None'}: expected softmax(q k^T / sqrt(Dh) + bias) v per "
                    f"head, concatenated, then proj; {came(got, want)}\n{m}"))


@pytest.mark.parametrize("fused", [True, False])
def test_attention_equals_torch_multihead_attention(fused):
    f = VIT["attention_qv0"]                                       # qkv rows [q | k | v]: in_proj's layout
    attn = _attention(f, fused, False)
    with torch.no_grad():
        for b, want in ((None, f["out"]), (f["bias"], f["out_bias"])):
            got = attn(f["x"], b)
            how = "(H, N, N) added to the logits" if b is not None else "None"
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=lambda m: (
                f"ViT App. A Eq. 5-8: fused={fused}, attn_bias {how}: expected torch.nn.MultiheadAttention's "
                f"output; {came(got, want)}\n{m}"))


@pytest.mark.parametrize("layer_scale", [0.0, 0.1])
def test_block_equals_timm_block_with_layer_scale(layer_scale):
    f = VIT[f"block_ls{layer_scale}"]                              # timm's Block (init_values = layer scale)
    ours = Block(16, 4, 64, ViTConfig(embed_dim=16, num_heads=4, layer_scale=layer_scale)).eval()
    ours.load_state_dict(f["weights"])                             # norm1, attn.qkv/proj, norm2, mlp, gammas
    with torch.no_grad():
        for b, want in ((None, f["out"]), (f["bias"], f["out_bias"])):
            got = ours(f["x"]) if b is None else ours(f["x"], b)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=lambda m: (
                f"ViT §3.1 Eq. 2-3: layer scale {layer_scale}, attn_bias {'given' if b is not None else 'None'}: "
                f"expected timm's Block output; {came(got, want)}\n{m}"))

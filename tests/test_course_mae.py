"""Graded tests of the course assignment `mae` that test_mae.py did not have: MAE §3's encoder and decoder by their
defining properties (the encoder never sees removed patches; at ratio 0 it is the plain ViT up to the shuffle; the
decoder's input is the visible tokens and one shared mask token, each at its own position)."""
import torch

from mae import create_mae, patchify
from vit import PatchEmbed


def test_patchify_order_is_the_patch_embeddings_order():
    P, C = 4, 3
    embed = PatchEmbed(16, P, C, P * P * C, bias=False)           # a conv that copies pixel (c, i, j) to channel
    with torch.no_grad():                                          # (i * P + j) * C + c: MAE's layout
        embed.proj.weight.zero_()
        for i in range(P):
            for j in range(P):
                for c in range(C):
                    embed.proj.weight[(i * P + j) * C + c, c, i, j] = 1.0
    x = torch.randn(2, C, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(patchify(x, P), embed(x))      # the targets line up with the encoder's tokens


def _model():
    torch.manual_seed(0)
    m = create_mae("mae_vit_test").eval()                          # 32 px, patch 8: 4 x 4 = 16 patches, D 64
    with torch.no_grad():
        m.mask_token.normal_()
    return m


def _paint_patches(imgs, which, value):
    out = imgs.clone()
    for b, n in which.nonzero().tolist():                          # patch n = row n // 4, column n % 4
        r, c = divmod(n, 4)
        out[b, :, r * 8:(r + 1) * 8, c * 8:(c + 1) * 8] = value
    return out


def test_encoder_never_sees_the_removed_patches():
    m = _model()
    imgs = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.manual_seed(3)
        latent, mask, ids_restore = m.forward_encoder(imgs, 0.75)
        assert latent.shape == (3, 1 + 4, 64) and mask.shape == (3, 16) and mask.sum(1).tolist() == [12] * 3
        torch.manual_seed(3)                                       # the same masks again ...
        latent2, mask2, _ = m.forward_encoder(_paint_patches(imgs, mask, 7.0), 0.75)   # ... other removed pixels
        assert torch.equal(mask2, mask)
        torch.testing.assert_close(latent2, latent)                # MAE §3: the encoder only sees visible patches
        torch.manual_seed(3)
        latent3, _, _ = m.forward_encoder(_paint_patches(imgs, ~mask, 7.0), 0.75)     # other visible pixels
    assert not torch.allclose(latent3, latent)


def test_encoder_at_ratio_0_is_the_vit_up_to_the_shuffle():
    m = _model()
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        full = m.encoder.forward_features(imgs)                    # vit.py: every patch, in patch order, + cls
        torch.manual_seed(1)
        latent, mask, ids_restore = m.forward_encoder(imgs, 0.0)
    assert latent.shape == full.shape and not mask.any()
    torch.testing.assert_close(latent[:, 0], full[:, 0], atol=1e-5, rtol=1e-4)   # cls
    for b in range(2):                                             # token of patch n sits at ids_restore[b, n]
        torch.testing.assert_close(latent[b, 1:][ids_restore[b]], full[b, 1:], atol=1e-5, rtol=1e-4)


def test_decoder_output_is_in_patch_order_whatever_the_shuffle():
    m = _model()
    imgs = torch.randn(2, 3, 32, 32)
    preds, shuffles = [], []
    with torch.no_grad():
        for seed in (0, 1):
            torch.manual_seed(seed)
            latent, mask, ids_restore = m.forward_encoder(imgs, 0.0)   # nothing removed, shuffled differently
            preds.append(m.forward_decoder(latent, ids_restore))
            shuffles.append(ids_restore)
        torch.manual_seed(0)
        latent, _, ids_restore = m.forward_encoder(imgs, 0.75)
        assert m.forward_decoder(latent, ids_restore).shape == (2, 16, 8 * 8 * 3)   # (B, N, P*P*C), no cls
    assert not torch.equal(*shuffles)
    assert preds[0].shape == (2, 16, 8 * 8 * 3)
    torch.testing.assert_close(preds[0], preds[1], atol=1e-5, rtol=1e-4)


def test_decoder_uses_the_mask_token_and_its_positions():
    m = _model()
    imgs = torch.randn(2, 3, 32, 32)
    seen = {}
    m.decoder_blocks[0].register_forward_pre_hook(lambda mod, args: seen.update(x=args[0].detach().clone()))
    with torch.no_grad():
        torch.manual_seed(4)
        latent, mask, ids_restore = m.forward_encoder(imgs, 0.75)
        m.forward_decoder(latent, ids_restore)
        emb = m.decoder_embed(latent)                              # (B, 1 + 4, Dd): cls, then visible in noise order
    x, pos, token = seen["x"], m.decoder_pos_embed[0], m.mask_token[0, 0]
    assert x.shape == (2, 1 + 16, 32)                              # MAE §3: the full set of tokens
    torch.testing.assert_close(x[:, 0], emb[:, 0] + pos[0])
    for b in range(2):
        for n in range(16):
            want = token if mask[b, n] else emb[b, 1 + ids_restore[b, n]]
            torch.testing.assert_close(x[b, 1 + n], want + pos[1 + n], msg=f"image {b}, patch {n}")

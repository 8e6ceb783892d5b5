"""Graded tests of the course assignment `mae` that test_mae.py did not have: MAE §3's encoder and decoder by
their defining properties (the encoder never sees removed patches; at ratio 0 it is the plain ViT up to the
shuffle; the decoder's input is the visible tokens and one shared mask token, each at its own position)."""
import torch

from mae import create_mae, patchify
from vit import PatchEmbed


def test_patchify_order_is_the_patch_embeddings_order():
    P, C = 4, 3
    # a conv that copies pixel (c, i, j) to channel
    embed = PatchEmbed(16, P, C, P * P * C, bias=False)
    with torch.no_grad():                                          # (i * P + j) * C + c: MAE's layout
        embed.proj.weight.zero_()
        for i in range(P):
            for j in range(P):
                for c in range(C):
                    embed.proj.weight[(i * P + j) * C + c, c, i, j] = 1.0
    x = torch.randn(2, C, 16, 16)
    # the targets line up with the encoder's tokens
    with torch.no_grad():
        torch.testing.assert_close(patchify(x, P), embed(x), msg=lambda m: (
            "MAE §3: expected patchify's patch n to be the patch embedding's token n, pixels (i*P + j)*C + c "
            f"(row-major, channels last)\n{m}"))


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
        removed = mask.sum(1).tolist()
        assert latent.shape == (3, 1 + 4, 64) and mask.shape == (3, 16) and removed == [12] * 3, (
            "MAE §3 'MAE encoder': expected latent (B, 1 + N_vis, D) = (3, 5, 64) and 12 of 16 removed per "
            f"image, got {tuple(latent.shape)}, mask {tuple(mask.shape)} removing {mask.sum(1).tolist()}")
        torch.manual_seed(3)                                       # the same masks again ...
        # ... other removed pixels
        latent2, mask2, _ = m.forward_encoder(_paint_patches(imgs, mask, 7.0), 0.75)
        assert torch.equal(mask2, mask), ("MAE §3: expected the same mask after torch.manual_seed(3) again: "
                                          "mask with random_masking on torch's global generator, its first "
                                          "draw")
        torch.testing.assert_close(latent2, latent, msg=lambda msg: (
            "MAE §3 'MAE encoder': expected the encoder output not to change when only REMOVED patches "
            f"change (it sees the visible ones)\n{msg}"))
        torch.manual_seed(3)
        latent3, _, _ = m.forward_encoder(_paint_patches(imgs, ~mask, 7.0), 0.75)     # other visible pixels
    assert not torch.allclose(latent3, latent), (
        "MAE §3 'MAE encoder': expected the encoder output to change when the VISIBLE patches change")


def test_encoder_at_ratio_0_is_the_vit_up_to_the_shuffle():
    m = _model()
    imgs = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        # vit.py: every patch, in patch order, + cls
        full = m.encoder.forward_features(imgs)
        torch.manual_seed(1)
        latent, mask, ids_restore = m.forward_encoder(imgs, 0.0)
    assert latent.shape == full.shape and not mask.any(), (
        f"MAE §3: ratio 0: expected all {full.shape[1]} tokens (cls + 16) and nothing removed, got "
        f"{tuple(latent.shape)} with {int(mask.sum())} removed")
    torch.testing.assert_close(latent[:, 0], full[:, 0], atol=1e-5, rtol=1e-4, msg=lambda m: (
        "MAE §3: ratio 0: expected the cls token of the ViT's forward_features (positions, blocks, "
        f"norm)\n{m}"))
    # token of patch n sits at ids_restore[b, n]
    for b in range(2):
        torch.testing.assert_close(latent[b, 1:][ids_restore[b]], full[b, 1:], atol=1e-5, rtol=1e-4,
                                   msg=lambda m: f"MAE §3: ratio 0, image {b}: expected the ViT's patch "
                                                 "tokens, shuffled (patch n at ids_restore[n]); positions "
                                                 f"added before masking\n{m}")


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
        shape = tuple(m.forward_decoder(latent, ids_restore).shape)
        assert shape == (2, 16, 8 * 8 * 3), (                      # (B, N, P*P*C), no cls
            "MAE §3 'MAE decoder': ratio 0.75: expected (B, N, P*P*C) = (2, 16, 192), cls dropped, got "
            f"{shape}")
    assert not torch.equal(*shuffles), "MAE §3: expected two seeds to shuffle differently (the premise)"
    assert preds[0].shape == (2, 16, 8 * 8 * 3), (
        f"MAE §3 'MAE decoder': expected (B, N, P*P*C) = (2, 16, 192), got {tuple(preds[0].shape)}")
    torch.testing.assert_close(preds[0], preds[1], atol=1e-5, rtol=1e-4, msg=lambda m: (
        "MAE §3 'MAE decoder': expected the same output in patch order whatever the shuffle (unshuffle with "
        f"ids_restore)\n{m}"))


def test_decoder_uses_the_mask_token_and_its_positions():
    m = _model()
    imgs = torch.randn(2, 3, 32, 32)
    seen = {}
    m.decoder_blocks[0].register_forward_pre_hook(lambda mod, args: seen.update(x=args[0].detach().clone()))
    with torch.no_grad():
        torch.manual_seed(4)
        latent, mask, ids_restore = m.forward_encoder(imgs, 0.75)
        m.forward_decoder(latent, ids_restore)
        # (B, 1 + 4, Dd): cls, then visible in noise order
        emb = m.decoder_embed(latent)
    x, pos, token = seen["x"], m.decoder_pos_embed[0], m.mask_token[0, 0]
    assert x.shape == (2, 1 + 16, 32), (                           # MAE §3: the full set of tokens
        "MAE §3 'MAE decoder': expected the blocks to get cls + all 16 tokens (2, 17, Dd = 32), got "
        f"{tuple(x.shape)}")
    torch.testing.assert_close(x[:, 0], emb[:, 0] + pos[0], msg=lambda m: (
        f"MAE §3 'MAE decoder': expected token 0 to be decoder_embed(cls) + decoder_pos_embed[0]\n{m}"))
    for b in range(2):
        for n in range(16):
            want = token if mask[b, n] else emb[b, 1 + ids_restore[b, n]]
            torch.testing.assert_close(x[b, 1 + n], want + pos[1 + n], msg=(
                f"MAE §3 'MAE decoder': image {b}, patch {n} ({'removed' if mask[b, n] else 'visible'}): "
                f"expected {'the shared mask token' if mask[b, n] else 'its decoder_embed token'} + its "
                f"position decoder_pos_embed[{1 + n}]"))

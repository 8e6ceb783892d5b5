"""Graded tests of the course assignment `mae` that test_mae.py did not have: MAE §3's encoder and decoder by
their defining properties (the encoder never sees removed patches; at ratio 0 it is the plain ViT up to the
shuffle; the decoder's input is the visible tokens and one shared mask token, each at its own position)."""
import torch

from expect import came
from mae import create_mae, patchify, unpatchify


def test_patchify_of_a_hand_labelled_image():
    # pixel (c, h, w) of a 3 x 4 x 4 image carries the number 100 c + 10 h + w; patches of P = 2
    x = torch.tensor([[[[100 * c + 10 * h + w for w in range(4)] for h in range(4)] for c in range(3)]],
                     dtype=torch.float)
    want = torch.tensor([[[0, 100, 200, 1, 101, 201, 10, 110, 210, 11, 111, 211],       # rows 0-1, columns 0-1
                          [2, 102, 202, 3, 103, 203, 12, 112, 212, 13, 113, 213],       # rows 0-1, columns 2-3
                          [20, 120, 220, 21, 121, 221, 30, 130, 230, 31, 131, 231],     # rows 2-3, columns 0-1
                          [22, 122, 222, 23, 123, 223, 32, 132, 232, 33, 133, 233]]],   # rows 2-3, columns 2-3
                        dtype=torch.float)
    got = patchify(x, 2)
    assert got.shape == want.shape and torch.equal(got, want), (
        "MAE §3: expected patch n = the patch embedding's token n (row-major), its pixels row-major, channels "
        f"last ((i*P + j)*C + c); for the labelled image: {came(got, want)}")
    assert torch.equal(unpatchify(want, 2), x), (
        f"MAE §3: expected unpatchify to put the hand-made patches back: {came(unpatchify(want, 2), x)}")


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
                                          f"draw; got {int((mask2 != mask).sum())} patches different")
        torch.testing.assert_close(latent2, latent, msg=lambda msg: (
            "MAE §3 'MAE encoder': expected the encoder output not to change when only REMOVED patches "
            f"change (it sees the visible ones); {came(latent2, latent)}\n{msg}"))
        torch.manual_seed(3)
        latent3, _, _ = m.forward_encoder(_paint_patches(imgs, ~mask, 7.0), 0.75)     # other visible pixels
    assert not torch.allclose(latent3, latent), (
        "MAE §3 'MAE encoder': expected the encoder output to change when the VISIBLE patches change; got the "
        "same output")


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
        f"norm); {came(latent[:, 0], full[:, 0])}\n{m}"))
    for b in range(2):                         # the same tokens, in some order: match each to its nearest
        dist = torch.cdist(full[b, 1:], latent[b, 1:])                     # (N, N)
        nearest = dist.argmin(1)
        assert sorted(nearest.tolist()) == list(range(16)) and dist.min(1).values.max() < 1e-4, (
            f"MAE §3: ratio 0, image {b}: expected the ViT's 16 patch tokens (positions added before "
            f"masking), in any order; got a token {dist.min(1).values.max():.3g} away from all of them")


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
    assert not torch.equal(*shuffles), "MAE §3: expected two seeds to shuffle differently (the premise), got one"
    assert preds[0].shape == (2, 16, 8 * 8 * 3), (
        f"MAE §3 'MAE decoder': expected (B, N, P*P*C) = (2, 16, 192), got {tuple(preds[0].shape)}")
    torch.testing.assert_close(preds[0], preds[1], atol=1e-5, rtol=1e-4, msg=lambda m: (
        "MAE §3 'MAE decoder': expected the same output in patch order whatever the shuffle (unshuffle with "
        f"ids_restore); {came(preds[0], preds[1])}\n{m}"))


# Hand-made shuffles of 16 patches, 4 visible: VISIBLE[b] lists the visible patches in the encoder's order
# (slots 0-3 of the latent, after cls); IDS_RESTORE[b][n] is patch n's place in [visible..., mask tokens...]
# (the masked patches follow in patch order). Written out by hand, not computed.
VISIBLE = [[1, 4, 8, 12], [15, 0, 7, 9]]
IDS_RESTORE = [[4, 0, 5, 6, 1, 7, 8, 9, 2, 10, 11, 12, 3, 13, 14, 15],
               [1, 4, 5, 6, 7, 8, 9, 2, 10, 3, 11, 12, 13, 14, 15, 0]]


def test_decoder_uses_the_mask_token_and_its_positions():
    m = _model()
    latent = torch.randn(2, 1 + 4, 64, generator=torch.Generator().manual_seed(4))   # cls + 4 visible
    ids_restore = torch.tensor(IDS_RESTORE)
    seen = {}
    m.decoder_blocks[0].register_forward_pre_hook(lambda mod, args: seen.update(x=args[0].detach().clone()))
    with torch.no_grad():
        m.forward_decoder(latent, ids_restore)
        emb = m.decoder_embed(latent)                                       # (B, 1 + 4, Dd)
    x, pos, token = seen["x"], m.decoder_pos_embed[0], m.mask_token[0, 0]
    assert x.shape == (2, 1 + 16, 32), (                                    # MAE §3: the full set of tokens
        "MAE §3 'MAE decoder': expected the blocks to get cls + all 16 tokens (2, 17, Dd = 32), got "
        f"{tuple(x.shape)}")
    torch.testing.assert_close(x[:, 0], emb[:, 0] + pos[0], msg=lambda m: (
        "MAE §3 'MAE decoder': expected token 0 to be decoder_embed(cls) + decoder_pos_embed[0]; "
        f"{came(x[:, 0], emb[:, 0] + pos[0])}\n{m}"))
    for b in range(2):
        for n in range(16):
            visible = n in VISIBLE[b]                      # the hand-made truth, not ids_restore arithmetic
            content = emb[b, 1 + VISIBLE[b].index(n)] if visible else token
            want = content + pos[1 + n]
            if torch.allclose(x[b, 1 + n], want, atol=1e-5, rtol=1e-4):
                continue
            label = (f"its visible token (latent slot {VISIBLE[b].index(n)})" if visible
                     else "the shared mask token")
            if torch.allclose(x[b, 1 + n], content, atol=1e-5, rtol=1e-4):
                why = (f"got {label} WITHOUT its position: add decoder_pos_embed (after unshuffling, to all "
                       "1 + N tokens)")
            else:
                rest = x[b, 1 + n] - pos[1 + n]
                other = [j for j in range(4) if torch.allclose(rest, emb[b, 1 + j], atol=1e-5, rtol=1e-4)]
                if other or torch.allclose(rest, token, atol=1e-5, rtol=1e-4):
                    got = f"latent slot {other[0]}" if other else "the mask token"
                    why = (f"got {got} + the position: the tokens are not in patch order (unshuffle [visible, "
                           "mask tokens] with ids_restore)")
                else:
                    why = f"got something else: {came(x[b, 1 + n], want)}"
            raise AssertionError(
                f"MAE §3 'MAE decoder': image {b}, patch {n} ({'visible' if visible else 'removed'}): expected "
                f"{label} + its position decoder_pos_embed[{1 + n}]; {why}")

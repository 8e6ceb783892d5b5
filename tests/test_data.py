"""data.py: the built-in shapes data is deterministic, balanced, learnable and needs shape (not colour);
folders, CIFAR and transforms behave as the papers' pipelines and fail with clear errors."""
import hashlib
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

import data
from data import IMAGENET_MEAN, IMAGENET_STD, DataError, build_dataset, build_transform, subset_fraction
from synthetic import ATOM_FAMILIES, ATOM_LOBES, SHAPES_CLASSES, SHAPES_VARIANTS, ShapesDataset, make_atoms, make_shapes


@pytest.fixture
def one_thread():
    """Tiny models: one thread avoids OpenMP hand-offs that dominate (and, on a busy 2-core machine, stall) them."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_shapes_deterministic_balanced_and_ten_plus_classes():
    a, la = make_shapes(200, 32, 7)
    b, lb = make_shapes(200, 32, 7)
    c, _ = make_shapes(200, 32, 8)
    assert a.shape == (200, 32, 32, 3) and a.dtype == np.uint8 and la.dtype == np.int64
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb) and not np.array_equal(a, c)
    assert len(SHAPES_CLASSES) >= 10 and len(set(SHAPES_CLASSES)) == len(SHAPES_CLASSES)
    assert np.bincount(la, minlength=10).tolist() == [20] * 10
    assert a.std() > 40                                           # not blank: colourful shapes and backgrounds


def test_train_and_val_are_disjoint_draws():
    tr, va = ShapesDataset("train", 300), ShapesDataset("val", 300)
    train_bytes = {img.tobytes() for img in tr.images}
    assert not any(img.tobytes() in train_bytes for img in va.images)
    img, label = tr[0]
    assert isinstance(img, Image.Image) and img.size == (32, 32) and label == tr.targets[0]
    assert tr.classes == SHAPES_CLASSES and len(ShapesDataset("val")) == 2000


def _colour_features(images):                                     # per-image mean and std of R, G, B: (N, 6)
    x = images.reshape(len(images), -1, 3).astype(np.float64) / 255
    return np.concatenate([x.mean(1), x.std(1)], 1)


@pytest.mark.parametrize("name", ["shapes", "shapes_easy", "atoms", "atoms_pool"])
def test_colour_statistics_alone_are_near_chance(one_thread, name):
    tr, va = build_dataset(name, "train", num_train=2000), build_dataset(name, "val", num_val=1000)
    Xtr, Xva = _colour_features(tr.images), _colour_features(va.images)
    mu, sd = Xtr.mean(0), Xtr.std(0)
    Xtr, Xva = (torch.tensor((X - mu) / sd, dtype=torch.float32) for X in (Xtr, Xva))
    ytr, yva = torch.tensor(tr.targets), torch.tensor(va.targets)
    # multinomial logistic regression on the 6 colour statistics (full-batch, to convergence)
    W, b = torch.zeros(6, 10, requires_grad=True), torch.zeros(10, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=0.05)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(Xtr @ W + b, ytr).backward()
        opt.step()
    acc = ((Xva @ W + b).argmax(1) == yva).float().mean().item()
    assert acc < 0.2, acc               # chance is 0.1; measured 0.13 (shapes_easy 0.13, atoms 0.09, atoms_pool 0.11)


def test_shapes_and_shapes_easy_are_unchanged_bit_for_bit():
    # digests of the data before `atoms` was added: the registry's new entries must not move a single pixel
    digests = {"shapes": "9973e577457108799dfc5a1399c70bad9f238114a3663fe8769607f3f4a5d7a7",
               "shapes_easy": "51b55637a8720ba026d1debb0d79dbf37f273d72bd591927bd4da5f3acc6ec8d"}
    for name, digest in digests.items():
        images, labels = make_shapes(100, 32, 0, **SHAPES_VARIANTS[name])
        assert hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest() == digest, name


def test_atoms_deterministic_balanced_and_the_teacher_pool_disjoint():
    a, la = make_atoms(200, 32, 7)
    b, lb = make_atoms(200, 32, 7)
    c, _ = make_atoms(200, 32, 8)
    p, lp = make_atoms(200, 32, 7, pool=1)                        # the teacher's pool, same seed
    assert a.shape == (200, 32, 32, 3) and a.dtype == np.uint8 and la.dtype == np.int64
    assert a.tobytes() == b.tobytes() and np.array_equal(la, lb) and not np.array_equal(a, c)
    assert np.bincount(la, minlength=10).tolist() == [20] * 10 == np.bincount(lp, minlength=10).tolist()
    # disjoint classes (no family on both sides, all 20 used), each lobe count and profile on both sides
    task, pool = set(ATOM_FAMILIES[0]), set(ATOM_FAMILIES[1])
    assert len(task) == len(pool) == 10 and not task & pool and len(task | pool) == 4 * len(ATOM_LOBES)
    for k in (0, 1):
        assert {f[k] for f in task} == {f[k] for f in pool}
    # disjoint images: the pools draw from separate random streams (no shared background either)
    assert not {img.tobytes() for img in a} & {img.tobytes() for img in p}
    assert np.abs(a.astype(int) - p.astype(int)).mean() > 20
    tr, te = build_dataset("atoms", "train", num_train=100), build_dataset("atoms_pool", "train", num_train=100)
    assert len(tr.classes) == len(te.classes) == 10 and not set(tr.classes) & set(te.classes)
    va = build_dataset("atoms", "val", num_val=100)
    assert not {img.tobytes() for img in tr.images} & {img.tobytes() for img in va.images}


def test_a_tiny_cnn_learns_shapes_far_above_chance(one_thread):
    torch.manual_seed(0)
    tr, va = ShapesDataset("train", 3000), ShapesDataset("val", 500)
    to_x = lambda d: torch.tensor(d.images).permute(0, 3, 1, 2).float() / 255 - 0.5   # noqa: E731  (N, 3, H, W)
    Xtr, Xva, ytr, yva = to_x(tr), to_x(va), torch.tensor(tr.targets), torch.tensor(va.targets)
    net = nn.Sequential(                                          # global max pool: position-invariant, and unlike
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),   # AdaptiveMaxPool2d its
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),  # CPU backward is fast
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(8), nn.Flatten(),
        nn.Linear(64, 10))
    epochs, bs = 12, 64
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * (len(tr) // bs))
    for _ in range(epochs):
        for i in torch.randperm(len(tr))[: len(tr) // bs * bs].split(bs):
            opt.zero_grad()
            F.cross_entropy(net(Xtr[i]), ytr[i]).backward()
            opt.step()
            sched.step()
    net.eval()
    with torch.no_grad():
        acc = (net(Xva).argmax(1) == yva).float().mean().item()
    assert acc > 0.5, acc                                         # chance 0.1; measured 0.71-0.75 over 3 seeds


def test_image_folder_export_roundtrip_and_corrupt_file_skipped(tmp_path, capsys):
    root = tmp_path / "shapes"
    data.main(["--num_train", "30", "--num_val", "20", "--export", str(root)])
    train, val = build_dataset(str(root), "train"), build_dataset(str(root), "val")
    assert len(train) == 30 and len(val) == 20 and train.classes == sorted(SHAPES_CLASSES)
    shapes = ShapesDataset("train", 30)                           # lossless PNG: same pixels, same labels
    i = train.samples.index(next(s for s in train.samples if s[0].endswith("00000.png")))
    assert np.array_equal(np.asarray(train[i][0]), shapes.images[0])
    assert train.classes[train.targets[i]] == shapes.classes[shapes.targets[0]]
    bad = root / "train" / train.classes[0] / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    train = build_dataset(str(root), "train", transform=build_transform("eval", 32))
    items = [train[i] for i in range(len(train))] + [train[0]]    # every index, and the first one twice
    assert len(items) == 32 and all(x.shape == (3, 32, 32) for x, _ in items)
    assert train.num_skipped == 1
    err = capsys.readouterr().err
    assert err.count("broken.jpg") == 1 and "skipping unreadable image" in err   # one warning, naming the file


def test_missing_and_empty_folders_raise_clear_errors(tmp_path):
    with pytest.raises(DataError, match=str(tmp_path / "nope" / "train")):
        build_dataset(str(tmp_path / "nope"), "train")
    (tmp_path / "d" / "train" / "cat").mkdir(parents=True)
    (tmp_path / "d" / "train" / "dog").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "d" / "train" / "dog" / "a.png")
    (tmp_path / "d" / "train" / "cat" / "notes.txt").write_text("not an image")
    with pytest.raises(DataError, match=r"class folder .*cat has no images"):
        build_dataset(str(tmp_path / "d"), "train")


def test_cifar_without_files_or_download_says_what_to_do(tmp_path):
    with pytest.raises(DataError, match=r"cifar-10-batches-py.*--download"):
        build_dataset("cifar10", "train", data_root=str(tmp_path))
    with pytest.raises(DataError, match=r"cifar-100-python"):
        build_dataset("cifar100", "val", data_root=str(tmp_path))


def test_subset_fraction_is_stratified_and_deterministic():
    ds = ShapesDataset("train", 1000)
    sub = subset_fraction(ds, 0.1, seed=3)
    assert len(sub) == 100 and np.bincount(sub.targets, minlength=10).tolist() == [10] * 10
    assert sub.targets == [ds.targets[i] for i in sub.indices]
    assert sub.indices == subset_fraction(ds, 0.1, seed=3).indices != subset_fraction(ds, 0.1, seed=4).indices
    assert sub.classes == ds.classes and np.bincount(subset_fraction(ds, 0.001).targets).tolist() == [1] * 10
    with pytest.raises(ValueError, match="fraction"):
        subset_fraction(ds, 0)


def test_transforms_follow_the_papers():
    img = ShapesDataset("train", 10)[0][0]
    for kind in ["pretrain", "finetune", "linprobe", "eval"]:
        assert build_transform(kind, 32)(img).shape == (3, 32, 32)
    ev = build_transform("eval", 224, crop_pct=0.875)
    assert ev.transforms[0].size == 256 and ev.transforms[1].size == (224, 224)      # MAE: 256 -> 224
    assert build_transform("eval", 224, crop_pct=1.0).transforms[0].size == 224      # FT-CLIP: 224 -> 224
    assert build_transform("eval", 32).transforms[0].size == 36                      # 32 / 0.875 -> 36 -> crop 32
    e = build_transform("eval", 32)
    assert torch.equal(e(img), e(img))
    ft = build_transform("finetune", 32)
    names = [type(t).__name__ for t in ft.transforms]
    ra = next(t for t in ft.transforms if type(t).__name__ == "RandAugment")
    assert ra.num_layers == 2 and len(ra.ops) == 15                                  # 'inc1': the increasing set
    assert all(op.magnitude == 9 and op.magnitude_std == 0.5 for op in ra.ops)
    er = next(t for t in ft.transforms if type(t).__name__ == "RandomErasing")
    assert er.probability == 0.25 and er.mode == "pixel" and "ColorJitter" not in names
    assert names.index("RandomErasing") > names.index("Normalize")                  # erases the normalised image
    assert "RandAugment" not in [type(t).__name__ for t in build_transform("finetune", 32, aa=None).transforms]
    raw = build_transform("pretrain", 32, mean=None)(img)
    assert raw.min() >= 0 and raw.max() <= 1
    assert not any(type(t).__name__ == "ColorJitter" for t in build_transform("pretrain", 32).transforms)
    assert any(type(t).__name__ == "ColorJitter" for t in build_transform("pretrain", 32, color_jitter=0.4).transforms)
    assert build_transform("pretrain", 32).transforms[0].scale == (0.2, 1.0)         # MAE pre-training crop scale
    assert build_transform("linprobe", 32).transforms[0].scale == (0.08, 1.0)
    with pytest.raises(ValueError, match="pretrain, finetune, linprobe, eval"):
        build_transform("mixup", 32)


def test_cli_writes_a_labelled_grid(tmp_path):
    out = tmp_path / "grid.png"
    data.main(["--num_train", "64", "--out", str(out)])
    w, h = Image.open(out).size
    assert w == 8 * 96 and h == 8 * (96 + 12)                     # 8 x 8 images at 3x, a 12 px label row each
    assert os.path.getsize(out) > 10_000


def test_cli_writes_an_atoms_grid(tmp_path):
    out = tmp_path / "atoms.png"
    data.main(["--data", "atoms", "--num_train", "64", "--out", str(out)])
    assert Image.open(out).size == (8 * 96, 8 * (96 + 12)) and os.path.getsize(out) > 10_000


def test_cli_reports_a_data_error_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match=r"error: no such folder: .*missing"):
        data.main(["--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")])


def test_randaug_posterize_at_magnitude_10_gives_black_instead_of_raising():
    # timm 'inc1' Posterize at magnitude 10 keeps 0 bits; Pillow >= 13 raises there, older Pillow returned black
    tf = build_transform("finetune", 32, IMAGENET_MEAN, IMAGENET_STD, aa="rand-m9-mstd0.5-inc1")
    ops = [o for t in tf.transforms for o in getattr(t, "ops", []) if o.name.startswith("Posterize")]
    assert ops, "timm's RandAugment has a Posterize op"
    op = ops[0]
    op.prob, op.magnitude, op.magnitude_std = 1.0, 10, 0
    img = Image.new("RGB", (8, 8), (200, 120, 40))
    assert op(img).getextrema() == ((0, 0), (0, 0), (0, 0))
    op.magnitude = 0                                            # 4 bits kept: 200 -> 192
    assert op(img).getpixel((0, 0)) == (192, 112, 32)

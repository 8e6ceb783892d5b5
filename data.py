"""Where images come from, and the papers' transforms.

Datasets (`build_dataset(data, split, transform)`, each with `.classes` and `.targets`):
  shapes       built in, offline, deterministic from a seed (`make_shapes`): 10 classes of geometric shapes with
               random colour, size, position, rotation and mirror on random gradient + stripe backgrounds. Colour,
               size and background are drawn independently of the class, so only the outline solves it (a colour-
               statistics classifier is at chance, a 3-layer CNN is far above: tests/test_data.py). 10,000 train /
               2,000 val at 32 px by default; generating them takes about a second.
  shapes_easy  the same with fewer nuisances (`SHAPES_VARIANTS`): a light shape of any hue on a dark background,
               70-95% of the side and equal mean area per class, +-20 deg rotations (the laptop study's data).
  atoms        (`make_atoms`) 10 classes of contours (lobe count x profile: flower, star, gear, pinwheel) at
               any rotation, size and position over dead leaves, partly occluded: closer to natural images.
               `atoms_pool`: the 10 other families on other images, a teacher's pool disjoint from `atoms`.
  cifar10/100  torchvision; downloaded only with --download (else a clear error saying where the files go).
  a folder     ImageNet layout DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg (torchvision ImageFolder); an
               unreadable image is skipped with one warning naming it, so one bad JPEG cannot kill a long run.
`subset_fraction` keeps a class-stratified fraction of the labels (the "fine-tune on 10% of ImageNet" setting).

Transforms (`build_transform(kind, img_size)`):
  pretrain   RandomResizedCrop(scale 0.2-1, bicubic) + flip, no colour jitter (MAE App. A.1 / Table 8; Table 1e);
             MaskDistill App. A adds colour jitter 0.4 (`color_jitter=0.4`) and normalises the views itself
             (`mean=None`).
  finetune   timm's RandAugment `rand-m9-mstd0.5-inc1` + RandomErasing 0.25 'pixel' (MAE App. A.1 / Table 9,
             FT-CLIP §2.1 / Table 10): timm.data.create_transform, exactly what both papers ran.
  linprobe   RandomResizedCrop + flip only (MAE App. A.1 / Table 10, linear probing).
  eval       resize to img_size / crop_pct, center crop (MAE 0.875: 256 -> 224; FT-CLIP 1.0: 224 -> 224).

Run:  python data.py --data shapes --out shapes.png      # a labelled 8x8 sample grid
      python data.py --data shapes --export DIR          # write shapes as an ImageFolder DIR/{train,val}/<class>/
Shape legend: N images, H x W pixels, S = supersampled side, m images of one class in a chunk.
"""
import argparse
import math
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from torchvision import datasets
from torchvision import transforms as T

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)   # OpenAI CLIP
MEAN_STD = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}   # --mean_std choices


class DataError(ValueError):
    """A data problem the user can fix; the message says what to do."""


# ----------------------------------------------------------------------------- shapes

# Outlines that stay distinguishable under any rotation at 32 px (no square *and* diamond: a rotated square is one).
SHAPES_CLASSES = ["circle", "ring", "square", "triangle", "star", "cross", "crescent", "semicircle", "arrow", "L-shape"]


def _polygon(k, r=1.0, inner=None):
    """Vertices of a regular k-gon (or a k-pointed star with `inner` radius) of circumradius r."""
    n = 2 * k if inner else k
    a = np.pi / 2 + 2 * np.pi * np.arange(n) / n
    rad = np.where(np.arange(n) % 2 == 1, inner, r) if inner else np.full(n, r)
    return np.stack([rad * np.cos(a), rad * np.sin(a)], 1)


_POLYGONS = {   # in the shape's own frame, spanning about [-1, 1]
    "square": np.array([[-.8, -.8], [.8, -.8], [.8, .8], [-.8, .8]]),
    "triangle": _polygon(3) + [0, -0.25],                      # vertices span y in [-0.5, 1]: centre the box
    "star": _polygon(5, 1.0, 0.42),
    "arrow": np.array([[-1, -.22], [.15, -.22], [.15, -.6], [1, 0], [.15, .6], [.15, .22], [-1, .22]]),
    "L-shape": np.array([[-.75, .9], [-.2, .9], [-.2, -.35], [.75, -.35], [.75, -.9], [-.75, -.9]]),
}


def _inside_polygon(u, v, verts):
    """Crossing-number test, vectorised over points: True where (u, v) lies inside the polygon."""
    inside = np.zeros(u.shape, dtype=bool)
    for (x1, y1), (x2, y2) in zip(verts.tolist(), np.roll(verts, -1, axis=0).tolist()):   # python floats: stay float32
        if y1 == y2:
            continue
        inside ^= ((y1 > v) != (y2 > v)) & (u < (x2 - x1) * (v - y1) / (y2 - y1) + x1)
    return inside


def _inside(kind, u, v):
    """Inside test for one class in the shape's frame (u, v: (m, S, S))."""
    r = np.hypot(u, v)
    if kind == "circle":
        return r <= 1
    if kind == "ring":
        return (r <= 1) & (r >= 0.55)
    if kind == "cross":
        return ((np.abs(u) <= .3) & (np.abs(v) <= .95)) | ((np.abs(v) <= .3) & (np.abs(u) <= .95))
    if kind == "crescent":
        return (r <= 1) & (np.hypot(u - 0.5, v) > 0.8)
    if kind == "semicircle":
        return (np.hypot(u, v + 0.4) <= 1) & (v >= -0.4)
    return _inside_polygon(u, v, _POLYGONS[kind])


def _segment_distance(p, a, b):
    """Distance from colours p to the segment [a, b] (all (N, 3)): how close fg gets to the gradient bg0 -> bg1."""
    d = b - a
    t = np.clip(((p - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-9), 0, 1)[:, None]
    return np.linalg.norm(p - (a + t * d), axis=1)


def _class_areas(n=256):
    """Area of each class's outline in its own [-1, 1]^2 frame (a circle of radius 1: pi), on an n x n grid."""
    g = ((np.arange(n) + 0.5) / n * 2 - 1).astype(np.float32)
    u, v = np.meshgrid(g, g, indexing="xy")
    return np.array([4 * _inside(k, u[None], v[None]).mean() for k in SHAPES_CLASSES])


# Named variants of the built-in data (`--data NAME`): make_shapes knobs. `shapes_easy` is the laptop study's
# (experiments/laptop.py): a ViT from scratch on 1,000 labels stays at chance on `shapes` for hundreds of steps.
SHAPES_VARIANTS = {"shapes": {},
                   "shapes_easy": dict(radius=(0.7, 0.95), max_angle=20.0, stripes=0.08, light_on_dark=True,
                                       equal_area=True)}


def make_shapes(num_images, img_size=32, seed=0, supersample=2, *, radius=(0.35, 0.8), max_angle=180.0, stripes=0.15,
                light_on_dark=False, equal_area=False):
    """(images uint8 (N, H, W, 3), labels int64 (N,)), deterministic in all arguments.
    Rendered `supersample` times larger and box-filtered down (anti-aliasing), one class at a time, vectorised.
    The nuisances, as knobs: `radius` (lo, hi), the shape's size in the [-1, 1] image frame (`equal_area`: rescaled
    per class so that every class covers the same area on average, capped at 1); rotations uniform in +-`max_angle`
    degrees (180 = any); background stripes of amplitude up to `stripes`; `light_on_dark`: a light shape (any hue) on
    a dark background, else any two colours. Measured with a ViT trained from scratch (vit_mini, 1,000-2,000 labels):
    with any two colours it stays at chance for hundreds of steps (edges of either sign in any hue), light-on-dark
    with these sizes plateaus near 19%, larger shapes learn (`shapes_easy`: 82% after 30 epochs on 1,000 labels)."""
    rng = np.random.default_rng(seed)
    K, S, n = len(SHAPES_CLASSES), img_size * supersample, num_images
    labels = rng.permutation(np.arange(n) % K)                                       # balanced classes
    # Everything but the class is drawn for all images at once and independently of the label, so colour, size,
    # position and background carry no class information: only the outline does.
    radius = rng.uniform(*radius, n)                                                 # default: 35-80% of the side
    if equal_area:            # every class covers the same area on average (a circle is drawn smaller than an arrow),
        areas = _class_areas()    # so the fraction of light pixels says nothing about the class
        radius = np.minimum(1.0, radius * np.sqrt(areas.mean() / areas)[labels])
    center = rng.uniform(-1, 1, (n, 2)) * (1 - radius)[:, None] * 0.9                # (mostly) inside the image
    a = np.deg2rad(min(max_angle, 180.0))                                           # angle in [-a, a] (any: 0-360)
    angle = rng.uniform(0, 2 * a, n) - (a if max_angle < 180 else 0.0)
    mirror = rng.random(n) < 0.5                                                     # mirror: the L-shape is chiral
    bg0, bg1, fg = rng.random((n, 3)), rng.random((n, 3)), rng.random((n, 3))        # RGB in [0, 1]
    if light_on_dark:         # any hue, but a light shape on a dark background: edges of one sign
        bg0, bg1, fg = 0.35 * bg0, 0.35 * bg1, 0.6 + 0.4 * fg
    for _ in range(50):       # the shape must stand out on all of its gradient: redraw fg while too close to it
        close = _segment_distance(fg, bg0, bg1) < 0.4
        if not close.any():
            break
        fg[close] = rng.random((int(close.sum()), 3))
    grad_dir, stripe_dir, stripe_phase = rng.uniform(0, 2 * np.pi, (3, n))
    stripe_freq, stripe_amp = rng.uniform(3, 12, n), rng.uniform(0, stripes, n)        # 1-4 stripes, faint to clear
    noise = 0.025 * rng.standard_normal((n, img_size, img_size), dtype=np.float32)   # (N, H, W) pixel noise

    def grid(size):                                                                  # pixel centres in [-1, 1]
        g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
        return np.meshgrid(g, g, indexing="xy")                                      # x: column, y: row, (size, size)

    def col(a):                                                                      # (m,) -> (m, 1, 1) float32
        return a.astype(np.float32)[:, None, None]

    xs, ys = grid(S)
    coverage = np.zeros((n, img_size, img_size), dtype=np.float32)                   # fraction of each pixel covered
    for k, kind in enumerate(SHAPES_CLASSES):
        ids = np.flatnonzero(labels == k)
        for idx in np.array_split(ids, max(1, len(ids) // 256)):                     # chunks bound the memory
            if len(idx) == 0:
                continue
            dx, dy = xs - col(center[idx, 0]), ys - col(center[idx, 1])              # (m, S, S)
            c, s, R = col(np.cos(angle[idx])), col(np.sin(angle[idx])), col(radius[idx])
            u, v = (dx * c + dy * s) / R, (dy * c - dx * s) / R                      # rotate + scale into shape frame
            u *= col(np.where(mirror[idx], -1.0, 1.0))
            m = _inside(kind, u, v).astype(np.float32)                               # (m, S, S) in {0, 1}
            coverage[idx] = m.reshape(len(idx), img_size, supersample, img_size, supersample).mean((2, 4))
    # Background: a linear gradient bg0 -> bg1 in a random direction, plus sinusoidal stripes and pixel noise.
    x, y = grid(img_size)                                                            # (H, W)
    t = (x * col(np.cos(grad_dir)) + y * col(np.sin(grad_dir)) + 1) / 2               # (N, H, W), about [0, 1]
    phase = col(stripe_freq) * (x * col(np.cos(stripe_dir)) + y * col(np.sin(stripe_dir))) + col(stripe_phase)
    texture = col(stripe_amp) * np.sin(phase) + noise                                # (N, H, W)
    img = t[..., None] * (bg1 - bg0).astype(np.float32)[:, None, None]               # (N, H, W, 3), in place below
    img += bg0.astype(np.float32)[:, None, None] + texture[..., None]
    img += coverage[..., None] * (fg.astype(np.float32)[:, None, None] - img)        # alpha-blend the shape on top
    img *= 255
    images = np.clip(np.rint(img, out=img), 0, 255).astype(np.uint8)                 # (N, H, W, 3)
    return images, labels.astype(np.int64)


class ShapesDataset(torch.utils.data.Dataset):
    """The built-in `shapes` data. Train and val are disjoint draws: their seeds come from (seed, split)."""

    def __init__(self, split="train", num_images=None, img_size=32, seed=0, transform=None, **knobs):
        if split not in ("train", "val"):
            raise DataError(f"unknown split '{split}'; use 'train' or 'val'")
        num_images = num_images or (10_000 if split == "train" else 2_000)
        split_seed = int(np.random.SeedSequence([seed, 0 if split == "train" else 1]).generate_state(1)[0])
        make, classes = knobs.pop("make", make_shapes), knobs.pop("classes", SHAPES_CLASSES)  # atoms: theirs
        self.images, labels = make(num_images, img_size, split_seed, **knobs)        # (N, H, W, 3) uint8, (N,)
        self.targets, self.classes, self.transform = labels.tolist(), list(classes), transform

    def __len__(self):
        return len(self.targets)

    def __getitem__(self, i):
        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), self.targets[i]


# ----------------------------------------------------------------------------- atoms

# VisualAtom-like contours (Takashima et al., CVPR 2023), r(theta) = 1 + a wave(n theta + phase); a
# family is (lobe count n, lobe profile). The 20 split like a checkerboard into the task `atoms` and
# the teacher's pool `atoms_pool` (ATOM_FAMILIES[1]): each lobe count and profile occurs on both
# sides, so what a teacher learns can transfer, while no label and no image is shared.
ATOM_LOBES, ATOM_PROFILES = (2, 3, 4, 6, 8), ("flower", "star", "gear", "pinwheel")
ATOM_FAMILIES = [[(n, j) for i, n in enumerate(ATOM_LOBES) for j in range(4) if (i + j) % 2 == pool]
                 for pool in (0, 1)]
_WAVES = [(lambda u: np.cos(2 * np.pi * u), 1 / 2),    # u in [0, 1): one lobe. (wave, mean square)
          (lambda u: 1 - 4 * np.abs(u - 0.5), 1 / 3),  # star: pointed tips and valleys
          (lambda u: np.where(np.abs(u - 0.5) > 0.25, 1, -1), 1.0),   # gear: square teeth
          (lambda u: 2 * u - 1, 1 / 3)]                # pinwheel: a sawtooth, chiral blades


def make_atoms(num_images, img_size=32, seed=0, supersample=2, *, pool=0, radius=(0.55, 0.85),
               amp=(0.35, 0.5), leaves=32, contrast=0.35, occluders=1):
    """(images uint8 (N, H, W, 3), labels int64 (N,)): a contour of one of the pool's 10 families at
    any rotation, a random size (`radius`, [-1, 1] frame), lobe depth `amp`, position and colour,
    over dead leaves (`leaves` discs, colours `contrast` of the way from a per-image mean to
    uniform), under up to `occluders` discs (each p 0.5) on its rim. All objects have one area (the
    radius is divided by sqrt(1 + a^2 E[wave^2])) and colours are drawn independently of the class,
    so colour statistics say nothing. A light object on a dark background: with any two colours a
    ViT from scratch stays at chance on 200 labels (probes.md), as on `shapes`."""
    rng, f4, px, H = np.random.default_rng([seed, pool]), np.float32, 2 / img_size, img_size
    fams, n = np.array(ATOM_FAMILIES[pool]), num_images           # a pool has its own random stream
    labels = rng.permutation(np.arange(n) % len(fams))
    lobes, prof = fams[labels].T
    a, phase = rng.uniform(*amp, n), lobes * np.deg2rad(rng.uniform(-180, 180, n))
    R = rng.uniform(*radius, n) / np.sqrt(1 + a ** 2 * np.array([w[1] for w in _WAVES])[prof])
    cxy = rng.uniform(-1, 1, (n, 2)) * (1 - 1.2 * R[:, None]) * 0.5   # objects may cross the border
    mean, fg = rng.random((2, n, 3)) * [[[0.35]], [[0.4]]] + [[[0]], [[0.6]]]   # dark bg, light fg
    lo, hi = 0.08 ** -2, 0.5 ** -2                          # leaf radii 0.08-0.5, density ~ r^-3
    mix = lambda k: (1 - contrast) * mean[:, None] + contrast * rng.random((n, k, 3))   # noqa: E731
    leaf = [rng.uniform(-1.2, 1.2, (n, leaves, 2)),
            (lo - rng.random((n, leaves)) * (lo - hi)) ** -0.5,
            np.concatenate([mean[:, None], mix(leaves)], 1).astype(f4)]   # 0: the mean (no leaf)
    ang, dist = rng.uniform(0, 2 * np.pi, (n, occluders)), rng.uniform(0.6, 1.1, (n, occluders))
    occ = [cxy[:, None] + (R[:, None] * dist)[..., None] * np.stack([np.cos(ang), np.sin(ang)], -1),
           np.where(rng.random((n, occluders)) < 0.5,         # radius -1: no occluder
                    R[:, None] * rng.uniform(0.2, 0.4, (n, occluders)), -1), mix(occluders)]
    grid = lambda s: np.meshgrid(*[((np.arange(s) + 0.5) / s * 2 - 1).astype(f4)] * 2)  # noqa: E731
    (xs, ys), (x, y) = grid(H * supersample), grid(H)
    x, y, images = x[:1], y[:, :1], np.empty((n, H, H, 3), dtype=np.uint8)   # x (1, W), y (H, 1)
    for i in np.array_split(np.arange(n), max(1, n // 500)):   # chunks of ~500 images fit the cache
        top = np.zeros((len(i), H, H), dtype=np.intp)       # the front leaf at each pixel (0: none)
        for k in range(leaves):   # hard edges (6x faster than soft discs), a [1 2 1] blur per axis
            c = leaf[0][i, k, :, None, None]
            top[(x - c[:, 0]) ** 2 + (y - c[:, 1]) ** 2 < leaf[1][i, k, None, None] ** 2] = k + 1
        img = np.take_along_axis(leaf[2][i], top.reshape(len(i), -1, 1), 1).reshape(-1, H, H, 3)
        for ax in (1, 2):
            p = np.pad(img, [(1, 1) if d == ax else (0, 0) for d in range(4)], mode="edge")
            img = (p.take(range(H), ax) + 2 * img + p.take(range(2, H + 2), ax)) / 4
        col = lambda v: v[i, None, None].astype(f4)         # noqa: E731  (m,) -> (m, 1, 1)
        dx, dy = (xs - col(cxy[:, 0])) / col(R), (ys - col(cxy[:, 1])) / col(R)   # object frame
        u = (col(lobes) * np.arctan2(dy, dx) + col(phase)) / f4(2 * np.pi)
        u -= np.floor(u)                                    # the position within a lobe, [0, 1)
        wave = np.select([col(prof) == j for j in range(4)], [w(u) for w, _ in _WAVES]).astype(f4)
        cov = (np.hypot(dx, dy) <= 1 + col(a) * wave).reshape(len(i), H, supersample, H, -1)
        img += cov.mean((2, 4), dtype=f4)[..., None] * (fg[i, None, None].astype(f4) - img)
        for k in range(occluders):                          # anti-aliased discs over the object
            c, r = occ[0][i, k, :, None, None].astype(f4), occ[1][i, k, None, None].astype(f4)
            cov = np.clip((r - np.sqrt((x - c[:, 0]) ** 2 + (y - c[:, 1]) ** 2)) / px + 0.5, 0, 1)
            img += cov[..., None] * (occ[2][i, k, None, None].astype(f4) - img)
        img += 0.02 * rng.standard_normal((len(i), H, H, 1), dtype=f4)   # grey pixel noise
        images[i] = np.clip(np.rint(img * 255), 0, 255)
    return images, labels.astype(np.int64)


SHAPES_VARIANTS.update({name: dict(make=make_atoms, pool=pool, classes=[
    ATOM_PROFILES[j] + str(k) for k, j in ATOM_FAMILIES[pool]])
    for pool, name in enumerate(["atoms", "atoms_pool"])})


# ----------------------------------------------------------------------------- folders and CIFAR

class SafeImageFolder(datasets.ImageFolder):
    """ImageFolder that skips an unreadable image: it is replaced by the next readable one, so batch shapes and
    DDP step counts stay equal (FT-CLIP's loader does the same with a random other sample; the next one keeps it
    deterministic). One warning per bad file on stderr; `num_skipped` counts them (per process: each DataLoader
    worker counts its own). Errors in the transform are not caught: those are bugs, not bad files."""

    def __init__(self, root, transform=None):
        super().__init__(root, transform=transform)
        self.num_skipped, self._warned = 0, set()

    def __getitem__(self, index):
        for k in range(len(self.samples)):
            path, target = self.samples[(index + k) % len(self.samples)]
            try:
                img = self.loader(path)                                              # decodes fully (.convert('RGB'))
            except Exception as e:                                                   # noqa: BLE001 - any decode error
                if path not in self._warned:
                    self._warned.add(path)
                    self.num_skipped += 1
                    print(f"WARNING: skipping unreadable image {path} ({type(e).__name__}: {e}); "
                          f"{self.num_skipped} skipped so far", file=sys.stderr, flush=True)
                continue
            return (self.transform(img) if self.transform else img), target
        raise DataError(f"no readable image in {self.root}: check the files (each failure was printed above)")


def _image_folder(root, transform):
    layout = "expected an ImageNet-style tree DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg"
    if not os.path.isdir(root):
        raise DataError(f"no such folder: {root} ({layout})")
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
    if not classes:
        raise DataError(f"{root} has no class sub-folders ({layout})")
    for c in classes:         # ImageFolder's own error names no folder; this says which one and what to do
        folder = os.path.join(root, c)
        if not any(f.lower().endswith(datasets.folder.IMG_EXTENSIONS) for _, _, fs in os.walk(folder) for f in fs):
            raise DataError(f"class folder {folder} has no images ({', '.join(datasets.folder.IMG_EXTENSIONS)}); "
                            f"add images or remove the folder")
    return SafeImageFolder(root, transform)


def build_dataset(data, split, transform=None, *, img_size=32, data_root="./data", download=False, num_train=None,
                  num_val=None, seed=0):
    """`data`: 'shapes', 'cifar10', 'cifar100', or an ImageNet-style folder; `split`: 'train' or 'val'.
    Returns a Dataset with `.classes` and `.targets`. `img_size`, `num_*` and `seed` apply to shapes only."""
    if data in SHAPES_VARIANTS:
        return ShapesDataset(split, num_train if split == "train" else num_val, img_size, seed, transform,
                             **SHAPES_VARIANTS[data])
    if data in ("cifar10", "cifar100"):
        cls = datasets.CIFAR10 if data == "cifar10" else datasets.CIFAR100
        try:                  # CIFAR has no val split: its test split plays that role, as in most CIFAR papers
            return cls(data_root, train=split == "train", transform=transform, download=download)
        except RuntimeError:  # torchvision: "Dataset not found or corrupted. You can use download=True ..."
            folder = "cifar-10-batches-py" if data == "cifar10" else "cifar-100-python"
            raise DataError(f"{data} not found: put the python version in {os.path.join(data_root, folder)} "
                            f"(or point --data_root at its parent), or pass --download") from None
    return _image_folder(os.path.join(data, split), transform)


def subset_fraction(dataset, fraction, seed=0):
    """A class-stratified `fraction` of the samples (at least one per class), deterministic in `seed`; labels are
    read from `.targets`, so no image is loaded. For "fine-tune with 10% of the labels" experiments."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    targets, rng = np.asarray(dataset.targets), np.random.default_rng(seed)
    keep = []
    for c in np.unique(targets):
        ids = np.flatnonzero(targets == c)
        keep.extend(rng.choice(ids, max(1, round(fraction * len(ids))), replace=False).tolist())
    keep.sort()                                                                      # dataset order, not class order
    sub = torch.utils.data.Subset(dataset, keep)
    sub.classes, sub.targets = dataset.classes, targets[keep].tolist()
    return sub


# ----------------------------------------------------------------------------- transforms

def _posterize(img, bits_to_keep, **_):
    if bits_to_keep >= 8:
        return img
    return ImageOps.posterize(img, bits_to_keep) if bits_to_keep > 0 else Image.new(img.mode, img.size)


def fix_posterize(transform):
    """timm's 'inc1' Posterize keeps 4 - int(4 m / 10) bits: 0 at magnitude 10, which mstd 0.5 reaches in ~2% of draws.
    Pillow >= 13 raises on 0 bits, where older Pillow (and so the papers' runs) returned a black image: restore that,
    so an epoch does not die in a worker."""
    for op in (o for t in getattr(transform, "transforms", []) for o in getattr(t, "ops", [])):
        if op.name.startswith("Posterize"):
            op.aug_fn = _posterize
    return transform


def build_transform(kind, img_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, *, scale=None, interpolation="bicubic",
                    aa="rand-m9-mstd0.5-inc1", reprob=0.25, crop_pct=0.875, color_jitter=0.0, hflip=0.5):
    """kind: pretrain | finetune | linprobe | eval (see the module docstring). mean=None skips Normalize
    (pretrain/linprobe/eval); `scale=None` means each kind's paper default."""
    interp = T.InterpolationMode(interpolation)
    tail = [T.ToTensor()] + ([T.Normalize(mean, std)] if mean is not None else [])   # (3, H, W) float
    if kind == "pretrain":    # MAE Table 8: RandomResizedCrop + flip; App. A.1 and Table 1e: "adding color
        # jittering degrades the results". MaskDistill App. A (as BEiT v2) uses ColorJitter 0.4.
        t = [T.RandomResizedCrop(img_size, scale=scale or (0.2, 1.0), interpolation=interp),
             T.RandomHorizontalFlip(hflip)]
        if color_jitter > 0:
            t.append(T.ColorJitter(color_jitter, color_jitter, color_jitter))
        return T.Compose(t + tail)
    if kind == "finetune":    # MAE Table 9 / FT-CLIP Table 10: RandAug (9, 0.5), n 2, erasing 0.25, via timm.
        # torchvision's RandAugment magnitude 9 is on a 31-bin scale (about a third as strong) and has no magnitude
        # std, so it is not a stand-in for the `rand-m9-mstd0.5-inc1` the papers ran.
        if mean is None:
            raise ValueError("build_transform('finetune') needs mean/std: RandomErasing acts on the normalised image")
        from timm.data import create_transform
        return fix_posterize(create_transform(input_size=img_size, is_training=True, scale=scale or (0.08, 1.0),
                                              hflip=hflip, auto_augment=aa or None, color_jitter=color_jitter or None,
                                              interpolation=interpolation, re_prob=reprob, re_mode="pixel", re_count=1,
                                              mean=mean, std=std))
    if kind == "linprobe":    # MAE App. A.1 / Table 10: "regularization is in general harmful for linear probing"
        return T.Compose([T.RandomResizedCrop(img_size, scale=scale or (0.08, 1.0), interpolation=interp),
                          T.RandomHorizontalFlip(hflip)] + tail)
    if kind == "eval":        # resize the shorter side to img_size / crop_pct, then center crop (32 px: 36 -> 32)
        return T.Compose([T.Resize(int(img_size / crop_pct), interpolation=interp), T.CenterCrop(img_size)] + tail)
    raise ValueError(f"unknown transform kind '{kind}'; choose one of: pretrain, finetune, linprobe, eval")


# ----------------------------------------------------------------------------- CLI

def save_grid(dataset, path, n=64, scale=3, seed=0):
    """A labelled grid of `n` random samples (the dataset must return PIL images), each upscaled `scale` times."""
    idx = np.random.default_rng(seed).choice(len(dataset), min(n, len(dataset)), replace=False)
    cols, label_h = int(math.ceil(math.sqrt(len(idx)))), 12
    w, h = (side * scale for side in dataset[int(idx[0])][0].size)
    canvas = Image.new("RGB", (cols * w, int(math.ceil(len(idx) / cols)) * (h + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, i in enumerate(idx):
        img, label = dataset[int(i)]
        x, y = (k % cols) * w, (k // cols) * (h + label_h)
        canvas.paste(img.convert("RGB").resize((w, h), Image.NEAREST), (x, y))
        draw.text((x + 2, y + h), str(dataset.classes[label])[:14], fill="black")   # PIL's default font
    canvas.save(path)


def export_image_folder(dataset, root):
    """Write a dataset of PIL images as root/<class>/<index>.png (lossless, so pixels survive the round trip)."""
    for i in range(len(dataset)):
        img, label = dataset[i]
        folder = os.path.join(root, dataset.classes[label])
        os.makedirs(folder, exist_ok=True)
        img.save(os.path.join(folder, f"{i:05d}.png"))


def main(argv=None):
    p = argparse.ArgumentParser(description="Show or export a dataset (default: the built-in shapes).")
    p.add_argument("--data", default="shapes", help="shapes | shapes_easy | atoms | atoms_pool | cifar10 | "
                   "cifar100 | an ImageNet-style folder")
    p.add_argument("--img_size", type=int, default=32, help="shapes: image side in pixels")
    p.add_argument("--num_train", type=int, default=None, help="shapes: training images (default 10000)")
    p.add_argument("--num_val", type=int, default=None, help="shapes: validation images (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="shapes: the dataset's seed")
    p.add_argument("--data_root", default="./data", help="where cifar10/cifar100 live (or are downloaded to)")
    p.add_argument("--download", action="store_true", help="allow downloading cifar10/cifar100")
    p.add_argument("--out", default=None, help="write a labelled 8x8 sample grid of the train split to this PNG")
    p.add_argument("--export", default=None, help="write the data as an ImageFolder DIR/{train,val}/<class>/*.png")
    args = p.parse_args(argv)
    kw = dict(img_size=args.img_size, data_root=args.data_root, download=args.download, num_train=args.num_train,
              num_val=args.num_val, seed=args.seed)
    try:
        train = build_dataset(args.data, "train", **kw)
        if args.out:
            save_grid(train, args.out)
            print(f"wrote {args.out}")
        if args.export:
            for split in ("train", "val"):
                export_image_folder(train if split == "train" else build_dataset(args.data, "val", **kw),
                                    os.path.join(args.export, split))
            print(f"wrote {args.export}/train and {args.export}/val")
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    if not (args.out or args.export):
        print(f"{args.data}: {len(train)} training images, {len(train.classes)} classes; pass --out or --export")


if __name__ == "__main__":
    main()

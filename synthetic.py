"""The built-in data: classes of images drawn in numpy from a seed, so every run has data offline, at once.

  shapes       10 classes of geometric shapes with random colour, size, position, rotation and mirror on
               random gradient + stripe backgrounds, all drawn independently of the class: only the outline
               solves it (a colour-statistics classifier is at chance, a 3-layer CNN far above:
               tests/test_data.py). The default of every script; about a second for 10,000.
  shapes_easy  the same with fewer nuisances (`SHAPES_VARIANTS`): a light shape of any hue on a dark
               background, 70-95% of the side, equal mean area per class, +-20 deg rotations.
  atoms        (`make_atoms`) 10 classes of contours (lobe count x profile: flower, star, gear, pinwheel) at
               any rotation, size and position over dead leaves, partly occluded: closer to natural images'
               statistics (the laptop study's data). `atoms_pool`: the 10 other families on other images, a
               teacher's pool disjoint from `atoms` in classes and images.
Each is a name for data.build_dataset / every script's --data; train and val are disjoint draws.
`python data.py --data atoms --out runs/atoms.png` shows one.

Shape legend: N images, H x W pixels, S = supersampled side, m images of one class in a chunk.
"""
import numpy as np
import torch
from PIL import Image

# ----------------------------------------------------------------------------- shapes

# Outlines that stay distinguishable under any rotation at 32 px (no square *and* diamond: a rotated square
# is one).
SHAPES_CLASSES = ["circle", "ring", "square", "triangle", "star", "cross", "crescent", "semicircle", "arrow",
                  "L-shape"]


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
    # python floats: stay float32
    for (x1, y1), (x2, y2) in zip(verts.tolist(), np.roll(verts, -1, axis=0).tolist()):
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
    """Distance from colours p to the segment [a, b] (all (N, 3)): how close fg gets to the gradient."""
    d = b - a
    t = np.clip(((p - a) * d).sum(1) / np.maximum((d * d).sum(1), 1e-9), 0, 1)[:, None]
    return np.linalg.norm(p - (a + t * d), axis=1)


def _class_areas(n=256):
    """Area of each class's outline in its own [-1, 1]^2 frame (a unit circle: pi), on an n x n grid."""
    g = ((np.arange(n) + 0.5) / n * 2 - 1).astype(np.float32)
    u, v = np.meshgrid(g, g, indexing="xy")
    return np.array([4 * _inside(k, u[None], v[None]).mean() for k in SHAPES_CLASSES])


# Named variants of the built-in data (`--data NAME`): make_shapes knobs. `shapes_easy` is the laptop study's
# (experiments/laptop.py): a ViT from scratch on 1,000 labels stays at chance on `shapes` for hundreds of steps.
SHAPES_VARIANTS = {"shapes": {},
                   "shapes_easy": dict(radius=(0.7, 0.95), max_angle=20.0, stripes=0.08, light_on_dark=True,
                                       equal_area=True)}


def make_shapes(num_images, img_size=32, seed=0, supersample=2, *, radius=(0.35, 0.8), max_angle=180.0,
                stripes=0.15,
                light_on_dark=False, equal_area=False, progress=None):
    """(images uint8 (N, H, W, 3), labels int64 (N,)), deterministic in all arguments.
    Rendered `supersample` times larger and box-filtered down (anti-aliasing), one class at a time,
    vectorised. The nuisances, as knobs: `radius` (lo, hi), the size in the [-1, 1] image frame
    (`equal_area`: rescaled per class to the same mean area, capped at 1); rotations uniform in
    +-`max_angle` degrees (180 = any); background stripes up to `stripes`; `light_on_dark`: a light shape
    (any hue) on a dark background, else any two colours. Measured with a ViT from scratch (vit_mini,
    1,000-2,000 labels): with any two colours it stays at chance for hundreds of steps (edges of either
    sign in any hue), light-on-dark at these sizes plateaus near 19%, larger shapes learn (`shapes_easy`:
    82% after 30 epochs on 1,000 labels). `progress(m)`, if given, is called as each m images are drawn."""
    rng = np.random.default_rng(seed)
    K, S, n = len(SHAPES_CLASSES), img_size * supersample, num_images
    labels = rng.permutation(np.arange(n) % K)                                       # balanced classes
    # Everything but the class is drawn for all images at once and independently of the label, so colour, size,
    # position and background carry no class information: only the outline does.
    radius = rng.uniform(*radius, n)                                             # default: 35-80% of the side
    if equal_area:    # every class covers the same area on average (a circle is drawn smaller than an arrow),
        areas = _class_areas()    # so the fraction of light pixels says nothing about the class
        radius = np.minimum(1.0, radius * np.sqrt(areas.mean() / areas)[labels])
    center = rng.uniform(-1, 1, (n, 2)) * (1 - radius)[:, None] * 0.9              # (mostly) inside the image
    a = np.deg2rad(min(max_angle, 180.0))                                      # angle in [-a, a] (any: 0-360)
    angle = rng.uniform(0, 2 * a, n) - (a if max_angle < 180 else 0.0)
    mirror = rng.random(n) < 0.5                                               # mirror: the L-shape is chiral
    bg0, bg1, fg = rng.random((n, 3)), rng.random((n, 3)), rng.random((n, 3))        # RGB in [0, 1]
    if light_on_dark:         # any hue, but a light shape on a dark background: edges of one sign
        bg0, bg1, fg = 0.35 * bg0, 0.35 * bg1, 0.6 + 0.4 * fg
    for _ in range(50):     # the shape must stand out on all of its gradient: redraw fg while too close to it
        close = _segment_distance(fg, bg0, bg1) < 0.4
        if not close.any():
            break
        fg[close] = rng.random((int(close.sum()), 3))
    grad_dir, stripe_dir, stripe_phase = rng.uniform(0, 2 * np.pi, (3, n))
    stripe_freq, stripe_amp = rng.uniform(3, 12, n), rng.uniform(0, stripes, n)  # 1-4 stripes, faint to clear
    noise = 0.025 * rng.standard_normal((n, img_size, img_size), dtype=np.float32)   # (N, H, W) pixel noise

    def grid(size):                                                                 # pixel centres in [-1, 1]
        g = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
        return np.meshgrid(g, g, indexing="xy")                              # x: column, y: row, (size, size)

    def col(a):                                                                    # (m,) -> (m, 1, 1) float32
        return a.astype(np.float32)[:, None, None]

    xs, ys = grid(S)
    coverage = np.zeros((n, img_size, img_size), dtype=np.float32)            # fraction of each pixel covered
    per = max(1, 256 * 32 * 32 // (img_size * img_size))   # images per chunk: 256 at 32 px, 5 at 224 px
    for k, kind in enumerate(SHAPES_CLASSES):
        ids = np.flatnonzero(labels == k)
        for idx in np.array_split(ids, max(1, len(ids) // per)):                     # chunks bound the memory
            if len(idx) == 0:
                continue
            dx, dy = xs - col(center[idx, 0]), ys - col(center[idx, 1])              # (m, S, S)
            c, s, R = col(np.cos(angle[idx])), col(np.sin(angle[idx])), col(radius[idx])
            u, v = (dx * c + dy * s) / R, (dy * c - dx * s) / R              # rotate + scale into shape frame
            u *= col(np.where(mirror[idx], -1.0, 1.0))
            m = _inside(kind, u, v).astype(np.float32)                               # (m, S, S) in {0, 1}
            coverage[idx] = m.reshape(len(idx), img_size, supersample, img_size, supersample).mean((2, 4))
            if progress is not None:
                progress(len(idx))
    # Background: a linear gradient bg0 -> bg1 in a random direction, plus sinusoidal stripes and pixel noise.
    x, y = grid(img_size)                                                            # (H, W)
    t = (x * col(np.cos(grad_dir)) + y * col(np.sin(grad_dir)) + 1) / 2              # (N, H, W), about [0, 1]
    phase = col(stripe_freq) * (x * col(np.cos(stripe_dir)) + y * col(np.sin(stripe_dir))) + col(stripe_phase)
    texture = col(stripe_amp) * np.sin(phase) + noise                                # (N, H, W)
    img = t[..., None] * (bg1 - bg0).astype(np.float32)[:, None, None]          # (N, H, W, 3), in place below
    img += bg0.astype(np.float32)[:, None, None] + texture[..., None]
    img += coverage[..., None] * (fg.astype(np.float32)[:, None, None] - img)   # alpha-blend the shape on top
    img *= 255
    images = np.clip(np.rint(img, out=img), 0, 255).astype(np.uint8)                 # (N, H, W, 3)
    return images, labels.astype(np.int64)


def default_size(split):                               # images in a built-in split without --num_train/_val
    return 10_000 if split == "train" else 2_000


class ShapesDataset(torch.utils.data.Dataset):
    """The built-in `shapes` data. Train and val are disjoint draws: their seeds come from (seed, split)."""

    def __init__(self, split="train", num_images=None, img_size=32, seed=0, transform=None, **knobs):
        if split not in ("train", "val"):
            raise ValueError(f"unknown split '{split}'; use 'train' or 'val'")
        num_images = num_images or default_size(split)
        split_seed = int(np.random.SeedSequence([seed, 0 if split == "train" else 1]).generate_state(1)[0])
        make, classes = knobs.pop("make", make_shapes), knobs.pop("classes", SHAPES_CLASSES)  # atoms: theirs
        self.images, labels = make(num_images, img_size, split_seed, **knobs)       # (N, H, W, 3) uint8, (N,)
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
               amp=(0.35, 0.5), leaves=32, contrast=0.35, occluders=1, progress=None):
    """(images uint8 (N, H, W, 3), labels int64 (N,)): a contour of one of the pool's 10 families at
    any rotation, a random size (`radius`, [-1, 1] frame), lobe depth `amp`, position and colour,
    over dead leaves (`leaves` discs, colours `contrast` of the way from a per-image mean to
    uniform), under up to `occluders` discs (each p 0.5) on its rim. All objects have one area (the
    radius is divided by sqrt(1 + a^2 E[wave^2])) and colours are drawn independently of the class,
    so colour statistics say nothing. A light object on a dark background: with any two colours a
    ViT from scratch stays at chance on 200 labels (probes.md), as on `shapes`. `progress(m)`, if
    given, is called as each m images are drawn."""
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
    # chunks of ~500 images at 32 px (as many pixels at other sizes) fit the cache; no image depends on them
    per = max(1, 500 * 32 * 32 // (H * H))
    for i in np.array_split(np.arange(n), max(1, n // per)):
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
        if progress is not None:
            progress(len(i))
    return images, labels.astype(np.int64)


SHAPES_VARIANTS.update({name: dict(make=make_atoms, pool=pool, classes=[
    ATOM_PROFILES[j] + str(k) for k, j in ATOM_FAMILIES[pool]])
    for pool, name in enumerate(["atoms", "atoms_pool"])})

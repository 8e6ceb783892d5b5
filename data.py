"""Where images come from, and the papers' transforms.

Datasets (`build_dataset(data, split, transform)`, each with `.classes` and `.targets`):
  built in     shapes, shapes_easy, atoms, atoms_pool: generated in numpy from a seed, offline,
               in seconds (synthetic.py); 10,000 train / 2,000 val at 32 px by default
               (--num_train, --num_val); at 224 px minutes, under a progress bar (`drawing_bar`)
  cifar10/100  torchvision; downloaded only with --download (else a clear error saying where the
               files go)
  a folder     ImageNet layout DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg (torchvision
               ImageFolder); an unreadable image is skipped with one warning naming it: one bad
               JPEG cannot kill a long run
`subset_fraction` keeps a class-stratified fraction of the labels ("fine-tune on 10% of ImageNet").

Transforms (`build_transform(kind, img_size)`):
  pretrain   RandomResizedCrop(scale 0.2-1, bicubic) + flip, no colour jitter
             (MAE App. A.1 / Table 8; Table 1e); MaskDistill App. A adds colour jitter 0.4 and
             normalises the views itself (`mean=None`).
  finetune   timm's RandAugment `rand-m9-mstd0.5-inc1` + RandomErasing 0.25 'pixel'
             (MAE App. A.1 / Table 9, FT-CLIP §2.1 / Table 10): timm.data.create_transform,
             exactly what both papers ran.
  linprobe   RandomResizedCrop + flip only (MAE App. A.1 / Table 10, linear probing).
  eval       resize to img_size / crop_pct, center crop (MAE 0.875: 256 -> 224;
             FT-CLIP 1.0: 224 -> 224).

Run:  python data.py --data atoms --out runs/atoms.png  # a labelled 8x8 sample grid
      python data.py --data shapes --export DIR  # an ImageFolder DIR/{train,val}/<class>/*.png
"""
import math
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageOps
from torchvision import datasets
from torchvision import transforms as T
from tqdm import tqdm

import engine
from synthetic import SHAPES_VARIANTS, ShapesDataset, default_size

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# OpenAI CLIP
CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
# --mean_std choices
MEAN_STD = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "clip": (CLIP_MEAN, CLIP_STD)}


class DataError(ValueError):
    """A data problem the user can fix; the message says what to do."""


# ----------------------------------------------------------------------------- folders and CIFAR

class SafeImageFolder(datasets.ImageFolder):
    """ImageFolder that skips an unreadable image: the next readable one replaces it, so batch
    shapes and DDP step counts stay equal (FT-CLIP's loader takes a random other sample; the next
    one is deterministic). One warning per bad file on stderr; `num_skipped` counts them (per
    process: each DataLoader worker counts its own). Errors in the transform are not caught: bugs,
    not bad files."""

    def __init__(self, root, transform=None):
        super().__init__(root, transform=transform)
        self.num_skipped, self._warned = 0, set()

    def __getitem__(self, index):
        for k in range(len(self.samples)):
            path, target = self.samples[(index + k) % len(self.samples)]
            try:
                img = self.loader(path)          # decodes fully (.convert('RGB'))
            except Exception as e:               # noqa: BLE001 - any decode error
                if path not in self._warned:
                    self._warned.add(path)
                    self.num_skipped += 1
                    print(f"WARNING: skipping unreadable image {path} ({type(e).__name__}: {e}); "
                          f"{self.num_skipped} skipped so far", file=sys.stderr, flush=True)
                continue
            return (self.transform(img) if self.transform else img), target
        raise DataError(f"no readable image in {self.root}: check the files (each failure was "
                        "printed above)")


def _image_folder(root, transform):
    layout = "expected an ImageNet-style tree DIR/train/<class>/*.jpg and DIR/val/<class>/*.jpg"
    if not os.path.isdir(root):
        raise DataError(f"no such folder: {root} ({layout})")
    classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
    if not classes:
        raise DataError(f"{root} has no class sub-folders ({layout})")
    # ImageFolder's own error names no folder; this says which one and what to do
    for c in classes:
        folder = os.path.join(root, c)
        exts = datasets.folder.IMG_EXTENSIONS
        if not any(f.lower().endswith(exts) for _, _, fs in os.walk(folder) for f in fs):
            raise DataError(f"class folder {folder} has no images ({', '.join(exts)}); "
                            "add images or remove the folder")
    return SafeImageFolder(root, transform)


# Drawing a built-in split shows a progress bar above this many pixels (images x side^2): 10,000
# images at 32 px (1e7) take seconds, no bar; 2,000 at 224 px (1e8) take minutes.
BAR_PIXELS = 2e7


def drawing_bar(data, split, n, img_size):
    """A tqdm bar over the images of a built-in split (stderr, the first process only, as the
    epoch bars) when drawing them takes more than a moment (BAR_PIXELS); else None."""
    if n * img_size ** 2 <= BAR_PIXELS or int(os.environ.get("RANK", 0)) != 0:
        return None
    return tqdm(total=n, desc=f"[data] drawing {data} {split}: {n:,} images at {img_size} px",
                unit="img", file=sys.stderr, dynamic_ncols=True)


def dataset_from_args(args, split, transform, img_size):
    """build_dataset with a script's --data, --data_root, --download, --num_train, --num_val; a
    data error ends the run in one line naming --data (once per machine under torchrun)."""
    try:
        return build_dataset(args.data, split, transform, img_size=img_size,
                             data_root=args.data_root, download=args.download,
                             num_train=args.num_train, num_val=args.num_val)
    except DataError as e:
        raise engine.fail(f"--data {args.data}: {e}") from None


def build_dataset(data, split, transform=None, *, img_size=32, data_root="./data", download=False,
                  num_train=None, num_val=None, seed=0):
    """`data`: a built-in name (synthetic.py), 'cifar10', 'cifar100', or an ImageNet-style folder;
    `split`: 'train' or 'val'. -> a Dataset with `.classes` and `.targets`. `img_size`, `num_*`,
    `seed`: built-in only."""
    if data in SHAPES_VARIANTS:
        n = (num_train if split == "train" else num_val) or default_size(split)
        bar = drawing_bar(data, split, n, img_size)
        knobs = dict(SHAPES_VARIANTS[data], **({"progress": bar.update} if bar else {}))
        try:
            return ShapesDataset(split, n, img_size, seed, transform, **knobs)
        finally:
            if bar is not None:
                bar.close()
    if data in ("cifar10", "cifar100"):
        cls = datasets.CIFAR10 if data == "cifar10" else datasets.CIFAR100
        # CIFAR has no val split: its test split plays that role, as in most CIFAR papers
        try:
            return cls(data_root, train=split == "train", transform=transform, download=download)
        except RuntimeError:
            # torchvision: "Dataset not found or corrupted. You can use download=True ..."
            folder = "cifar-10-batches-py" if data == "cifar10" else "cifar-100-python"
            raise DataError(f"{data} not found: put the python version in "
                            f"{os.path.join(data_root, folder)} (or point --data_root at its "
                            "parent), or pass --download") from None
    return _image_folder(os.path.join(data, split), transform)


def subset_fraction(dataset, fraction, seed=0):
    """A class-stratified `fraction` of the samples (at least one per class), deterministic in
    `seed`; labels are read from `.targets`, so no image is loaded."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    targets, rng = np.asarray(dataset.targets), np.random.default_rng(seed)
    keep = []
    for c in np.unique(targets):
        ids = np.flatnonzero(targets == c)
        keep.extend(rng.choice(ids, max(1, round(fraction * len(ids))), replace=False).tolist())
    keep.sort()                                       # dataset order, not class order
    sub = torch.utils.data.Subset(dataset, keep)
    sub.classes, sub.targets = dataset.classes, targets[keep].tolist()
    return sub


# ----------------------------------------------------------------------------- transforms

def _posterize(img, bits_to_keep, **_):
    if bits_to_keep >= 8:
        return img
    return (ImageOps.posterize(img, bits_to_keep) if bits_to_keep > 0
            else Image.new(img.mode, img.size))


def fix_posterize(transform):
    """timm's 'inc1' Posterize keeps 4 - int(4 m / 10) bits: 0 at magnitude 10, which mstd 0.5
    reaches in ~2% of draws. Pillow >= 13 raises on 0 bits, where older Pillow (so the papers'
    runs) returned a black image: restore that, so an epoch does not die in a worker."""
    for op in (o for t in getattr(transform, "transforms", []) for o in getattr(t, "ops", [])):
        if op.name.startswith("Posterize"):
            op.aug_fn = _posterize
    return transform


def build_transform(kind, img_size, mean=IMAGENET_MEAN, std=IMAGENET_STD, *, scale=None,
                    interpolation="bicubic", aa="rand-m9-mstd0.5-inc1", reprob=0.25,
                    crop_pct=0.875, color_jitter=0.0, hflip=0.5):
    """kind: pretrain | finetune | linprobe | eval (see the module docstring). mean=None skips
    Normalize (pretrain/linprobe/eval); `scale=None` means each kind's paper default."""
    interp = T.InterpolationMode(interpolation)
    # (3, H, W) float
    tail = [T.ToTensor()] + ([T.Normalize(mean, std)] if mean is not None else [])
    if kind == "pretrain":
        # MAE Table 8: RandomResizedCrop + flip; App. A.1 and Table 1e: "adding color jittering
        # degrades the results". MaskDistill App. A (as BEiT v2) uses ColorJitter 0.4.
        t = [T.RandomResizedCrop(img_size, scale=scale or (0.2, 1.0), interpolation=interp),
             T.RandomHorizontalFlip(hflip)]
        if color_jitter > 0:
            t.append(T.ColorJitter(color_jitter, color_jitter, color_jitter))
        return T.Compose(t + tail)
    if kind == "finetune":
        # MAE Table 9 / FT-CLIP Table 10: RandAug (9, 0.5), n 2, erasing 0.25, via timm.
        # torchvision's RandAugment magnitude 9 is on a 31-bin scale (about a third as strong) and
        # has no magnitude std: it is not a stand-in for the `rand-m9-mstd0.5-inc1` the papers ran.
        if mean is None:
            raise ValueError("build_transform('finetune') needs mean/std: RandomErasing acts on "
                             "the normalised image")
        from timm.data import create_transform
        return fix_posterize(create_transform(
            input_size=img_size, is_training=True, scale=scale or (0.08, 1.0), hflip=hflip,
            auto_augment=aa or None, color_jitter=color_jitter or None,
            interpolation=interpolation, re_prob=reprob, re_mode="pixel", re_count=1,
            mean=mean, std=std))
    # MAE App. A.1 / Table 10: "regularization is in general harmful for linear probing"
    if kind == "linprobe":
        crop = T.RandomResizedCrop(img_size, scale=scale or (0.08, 1.0), interpolation=interp)
        return T.Compose([crop, T.RandomHorizontalFlip(hflip)] + tail)
    if kind == "eval":
        # resize the shorter side to img_size / crop_pct, then center crop (32 px: 36 -> 32)
        resize = T.Resize(int(img_size / crop_pct), interpolation=interp)
        return T.Compose([resize, T.CenterCrop(img_size)] + tail)
    raise ValueError(f"unknown transform kind '{kind}'; choose one of: pretrain, finetune, "
                     "linprobe, eval")


# ----------------------------------------------------------------------------- CLI

def save_grid(dataset, path, n=64, scale=3, seed=0):
    """A labelled grid of `n` random samples (a dataset of PIL images), each upscaled `scale`
    times."""
    idx = np.random.default_rng(seed).choice(len(dataset), min(n, len(dataset)), replace=False)
    cols, label_h = int(math.ceil(math.sqrt(len(idx)))), 12
    w, h = (side * scale for side in dataset[int(idx[0])][0].size)
    canvas = Image.new("RGB", (cols * w, int(math.ceil(len(idx) / cols)) * (h + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, i in enumerate(idx):
        img, label = dataset[int(i)]
        x, y = (k % cols) * w, (k // cols) * (h + label_h)
        canvas.paste(img.convert("RGB").resize((w, h), Image.NEAREST), (x, y))
        # PIL's default font
        draw.text((x + 2, y + h), str(dataset.classes[label])[:14], fill="black")
    canvas.save(path)


def export_image_folder(dataset, root):
    """A dataset of PIL images as root/<class>/<index>.png (lossless: pixels survive the round
    trip)."""
    for i in range(len(dataset)):
        img, label = dataset[i]
        folder = os.path.join(root, dataset.classes[label])
        os.makedirs(folder, exist_ok=True)
        img.save(os.path.join(folder, f"{i:05d}.png"))


def main(argv=None):
    p = engine.Parser(description="Show or export a dataset (default: the built-in shapes).")
    p.add_argument("--data", default="shapes", help="shapes | shapes_easy | atoms | atoms_pool | "
                   "cifar10 | cifar100 | an ImageNet-style folder")
    p.add_argument("--img_size", type=int, default=32, help="shapes: image side in pixels")
    p.add_argument("--num_train", type=int, default=None,
                   help="shapes: training images (default 10000)")
    p.add_argument("--num_val", type=int, default=None,
                   help="shapes: validation images (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="shapes: the dataset's seed")
    p.add_argument("--data_root", default="./data",
                   help="where cifar10/cifar100 live (or are downloaded to)")
    p.add_argument("--download", action="store_true", help="allow downloading cifar10/cifar100")
    p.add_argument("--out", default=None,
                   help="a labelled 8x8 sample grid of the train split, as PNG (e.g. "
                   "runs/atoms.png: beside the runs, out of the code; the folder is made)")
    p.add_argument("--export", default=None,
                   help="the data as an ImageFolder DIR/{train,val}/<class>/*.png")
    args = p.parse_args(argv)
    kw = dict(img_size=args.img_size, data_root=args.data_root, download=args.download,
              num_train=args.num_train, num_val=args.num_val, seed=args.seed)
    try:
        train = build_dataset(args.data, "train", **kw)
        if args.out:
            os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
            save_grid(train, args.out)
            print(f"wrote {args.out}")
        if args.export:
            for split in ("train", "val"):
                ds = train if split == "train" else build_dataset(args.data, "val", **kw)
                export_image_folder(ds, os.path.join(args.export, split))
            print(f"wrote {args.export}/train and {args.export}/val")
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    if not (args.out or args.export):
        print(f"{args.data}: {len(train)} training images, {len(train.classes)} classes; "
              "pass --out or --export")


if __name__ == "__main__":
    main()

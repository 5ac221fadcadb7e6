"""``ganreg data``: make, convert and describe datasets.

Wired into the main CLI as ``from ganreg.cli_data import data``. Problems are
raised as :class:`ganreg.errors.DataError` / :class:`UserError` (the main CLI
prints them with their fix and exits with code 2). Every write is atomic: a
temporary name in the target folder, renamed when complete.
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.text import Text

from ganreg.errors import DataError, UserError

EMBEDDING_NOTE = (
    "Embeddings: the seed projects store 1024-d char-CNN-RNN caption embeddings, which cannot be computed "
    "here; ganreg writes a deterministic stand-in instead: a fixed random projection of the caption's bag of "
    "words (same caption, same vector, on every machine). Use a learned text encoder for real text features."
)


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


@click.group("data")
def data() -> None:
    """Make, convert and describe datasets (built-in shapes, HDF5, folder layout)."""


@data.group("make")
def make() -> None:
    """Write a dataset: the built-in shapes, or a folder converted to HDF5."""


def _hdf5_target(out: Path, name: str) -> Path:
    """Where ``--out`` writes an HDF5 file: ``out`` itself when it ends in .h5 / .hdf5 and is not a folder,
    else the file ``name`` inside the folder ``out`` (``make shapes`` and ``make hdf5`` alike)."""
    return out if out.suffix.lower() in (".h5", ".hdf5") and not out.is_dir() else out / name


def _check_free(path: Path, force: bool) -> None:
    """Refuse an output path before any work: a folder is never replaced, a file only with --force."""
    parent = next((q for q in path.parents if q.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"{parent} is a file, not a folder, so {path} cannot be written", "choose another --out")
    if path.is_dir():
        raise UserError(f"{path} is a folder", "choose another --out (--force replaces files, never folders)")
    if path.exists() and not force:
        raise UserError(f"{path} already exists", "choose another --out or pass --force to replace it")


@make.command(
    "shapes",
    help=f"""Write the built-in captioned shapes set to --out.

\b
--format hdf5: one file in the seed projects' HDF5 layout (train/test groups,
  one group per caption; --out DIR writes DIR/shapes.h5, --out FILE.h5 that file).
--format folder: DIR/images/<class>/<name>.jpg, DIR/text_c10/<class>/<name>.txt,
  DIR/trainclasses.txt and DIR/testclasses.txt.

{EMBEDDING_NOTE}""",
)
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Output folder (or .h5 file).")
@click.option("--size", default=64, show_default=True, type=click.IntRange(32, 256), help="Image side in pixels.")
@click.option(
    "--count", default=10000, show_default=True, type=click.IntRange(48, 1_000_000), help="Images (all classes)."
)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Images, captions and class split.")
@click.option("--format", "fmt", default="hdf5", show_default=True, type=click.Choice(["hdf5", "folder"]))
@click.option(
    "--captions",
    "n_captions",
    default=10,
    show_default=True,
    type=click.IntRange(1, 10),
    help="Captions written per image (the seed converters kept 5 of 10; each is one HDF5 group).",
)
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def make_shapes(out: Path, size: int, count: int, seed: int, fmt: str, n_captions: int, force: bool) -> None:
    from ganreg.atomic import atomic_dir
    from ganreg.data._util import encode_jpeg
    from ganreg.data.shapes import all_specs, class_names, class_split, load_or_generate

    con = _console()
    with con.status(f"drawing {count} shapes at {size}px"):
        images = load_or_generate(seed, count, size)
    specs = all_specs(seed, count)
    names = class_names()
    train, test = class_split(seed)
    split_of = {**{k: "train" for k in train}, **{k: "test" for k in test}}

    def records(split: str) -> Iterator[tuple[str, str, bytes, list[str]]]:
        for i, s in enumerate(specs):
            if split_of[s.label] == split:
                yield f"image_{i + 1:05d}", names[s.label], encode_jpeg(images[i]), list(s.captions[:n_captions])

    if fmt == "hdf5":
        from ganreg.data.hdf5 import write_hdf5

        target = _hdf5_target(out, "shapes.h5")
        _check_free(target, force)
        with con.status(f"writing {escape(str(target))}"):
            counts = write_hdf5(target, {"train": records("train"), "test": records("test")})
        con.print(f"[green]wrote[/] {escape(str(target))}: " + ", ".join(f"{k} {v} captions" for k, v in counts.items()))
        con.print(f"[dim]{EMBEDDING_NOTE}[/]")
        return
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} exists and is not an empty folder", "choose another --out")
    with con.status(f"writing {escape(str(out))}"), atomic_dir(out) as tmp:
        for split in ("train", "test"):
            classes = train if split == "train" else test
            (tmp / f"{split}classes.txt").write_text("".join(names[k] + "\n" for k in classes), encoding="utf-8")
            for name, cls, jpeg, caps in records(split):
                (tmp / "images" / cls).mkdir(parents=True, exist_ok=True)
                (tmp / "text_c10" / cls).mkdir(parents=True, exist_ok=True)
                (tmp / "images" / cls / f"{name}.jpg").write_bytes(jpeg)
                (tmp / "text_c10" / cls / f"{name}.txt").write_text("\n".join(caps) + "\n", encoding="utf-8")
    con.print(f"[green]wrote[/] {escape(str(out))}: {count} images, {len(train)} train + {len(test)} test classes")


@make.command(
    "hdf5",
    help=f"""Convert the folder dataset --from FOLDER to one HDF5 file in the seed layout.

\b
FOLDER holds <images_dir>/[<class>/]<name>.jpg, text_c10/<class>/<name>.txt
and class split files, chosen as for training (`ganreg run`) and `ganreg
data info`: trainvalclasses.txt (else trainclasses.txt) for train,
valclasses.txt (optional) for valid, testclasses.txt for test. Without
class lists: images with their captions beside them (photo.jpg +
photo.txt) or in a metadata.jsonl / metadata.csv (file_name, text), no
classes, a tenth of the images held out as test (the split of seed 0);
with a table per split folder (train/, test/) or COCO's filenames.pickle
of bare names, those give the splits.
--out FILE.h5 writes that file; --out DIR writes DIR/<FOLDER's name>.h5.
Every caption line becomes one group <name>_<c> holding the image's
original file bytes, so each image is stored once per caption (with 10
captions an image, the file is about 10x the size of the images).

{EMBEDDING_NOTE}""",
)
@click.option(
    "--from", "src", required=True, metavar="FOLDER", type=click.Path(path_type=Path), help="Folder dataset root."
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output .h5 file (or folder: writes <FOLDER's name>.h5 in it).",
)
@click.option("--images-dir", default=None, help="Image folder under FOLDER (default: images/, jpg/ or CUB's).")
@click.option("--captions-dir", default=None, help="Caption folder under FOLDER (default: text_c10/ or text/).")
@click.option("--force", is_flag=True, help="Replace an existing output file.")
def make_hdf5(src: Path, out: Path, images_dir: str | None, captions_dir: str | None, force: bool) -> None:
    with _options_in_errors({"data.path": "--from", **_FOLDER_OPTIONS}):
        _make_hdf5(src, out, images_dir, captions_dir, force)


_FOLDER_OPTIONS = {"data.images_dir": "--images-dir", "data.captions_dir": "--captions-dir"}


@contextlib.contextmanager
def _options_in_errors(options: dict[str, str]) -> Iterator[None]:
    """The data layer's errors name recipe settings (``set data.captions_dir``); a command that has an
    option for a setting names the option instead (``pass --captions-dir``)."""
    try:
        yield
    except UserError as exc:
        exc.message = _as_options(exc.message, options)
        exc.fix = _as_options(exc.fix, options) if exc.fix else None
        raise


def _as_options(text: str, options: dict[str, str]) -> str:
    from ganreg.data._util import MOVED_DATA_FIX

    text = text.replace(f"; {MOVED_DATA_FIX}", "")  # a data command has no run whose data moved
    for key, option in options.items():
        text = text.replace(f"set {key}", f"pass {option}").replace(key, option)
    return text


def _no_classes_line(layout: Any) -> str:
    """What `data info` and `make hdf5` say of a folder without classes (``layout.unlabelled``)."""
    if layout.split_tables:
        tables = ", ".join(f"{s} {t.relative_to(layout.root)}" for s, t in layout.split_tables.items())
        return f"no classes: every image is its own class, and each split has its caption table: {tables}"
    if layout.image_lists:
        lists = ", ".join(f"{s} {f.relative_to(layout.root)}" for s, f in layout.list_files.items())
        return f"no classes (COCO-like): every image is its own class, and each split is the image list of {lists}"
    where = f"in {layout.metadata.name}" if layout.metadata is not None else "in no class folders"
    return (
        f"no classes: the captions are {where}, so every image is its own class, and about a tenth of the "
        "images is the test split, drawn by a hash of data.seed and the image's name (seed 0 here)"
    )


def _folder_splits(layout: Any) -> list[str]:
    """The splits a folder has: those with a class list, or train and test when it has no classes."""
    from ganreg.data._util import SPLITS

    if layout.split_tables or layout.image_lists:
        return [s for s in SPLITS if s in layout.split_tables or s in layout.image_lists]
    return ["train", "test"] if layout.unlabelled else [s for s in SPLITS if s in layout.split_files]


def _class_lists_line(files: dict[str, Any]) -> str:
    """Which class list each split uses (``{split: file}``): printed by `make hdf5` and `data info`."""
    return "class lists: " + ", ".join(f"{s} {f}" for s, f in files.items())


def _make_hdf5(src: Path, out: Path, images_dir: str | None, captions_dir: str | None, force: bool) -> None:
    from ganreg.data.folder import FolderDataset
    from ganreg.data.folder_layout import FolderLayout
    from ganreg.data.hdf5 import write_hdf5

    if src.is_file():
        raise UserError(
            f"{src} is a file, not a dataset folder",
            "pass the dataset folder (images + text_c10/) to --from; an HDF5 file needs no conversion: "
            "train on it with data.source=hdf5",
        )
    target = _hdf5_target(out, f"{src.resolve().name or 'dataset'}.h5")
    _check_free(target, force)  # before the conversion, which can take long
    layout = FolderLayout(src, images_dir=images_dir, captions_dir=captions_dir)
    if "train" not in layout.split_files and "test" not in layout.split_files and not layout.unlabelled:
        raise layout.missing_split_error("train")
    datasets = {
        split: FolderDataset(src, split, images_dir=images_dir, captions_dir=captions_dir)
        for split in _folder_splits(layout)
    }
    con = _console()
    with con.status(f"writing {escape(str(target))}"):
        counts = write_hdf5(target, {s: ds.records() for s, ds in datasets.items()}, has_classes=not layout.unlabelled)
    summary = ", ".join(f"{k} {len(datasets[k])} images / {v} captions" for k, v in counts.items())
    con.print(f"[green]wrote[/] {escape(str(target))}: {summary}")
    if layout.unlabelled:
        con.print(_no_classes_line(layout), highlight=False, markup=False)
    else:
        con.print(_class_lists_line({s: f.relative_to(layout.root) for s, f in layout.split_files.items()}),
                  highlight=False, markup=False)
    con.print(f"[dim]{EMBEDDING_NOTE}[/]")


# ------------------------------------------------------------------------ info
def _size_range(sizes: list[tuple[int, int]]) -> dict[str, Any] | None:
    if not sizes:
        return None
    ws = [w for w, _ in sizes]
    hs = [h for _, h in sizes]
    return {"min": [min(ws), min(hs)], "max": [max(ws), max(hs)]}


def _stored_sizes(ds: Any, limit: int, skip_bad: bool = False) -> tuple[list[tuple[int, int]], int]:
    """The stored sizes of at most about ``limit`` images, spread over the split (headers only).
    ``skip_bad``: leave out images whose header does not read (``--check`` reports them all)."""
    from PIL import Image

    from ganreg.data._util import decode_error

    n = len(ds)
    step = max(1, -(-n // limit))  # ceil: at most `limit` images, as --sample promises
    sizes = []
    for i in range(0, n, step):
        data = b""
        try:
            data = ds.image_bytes(i)
            with Image.open(io.BytesIO(data)) as im:
                sizes.append(im.size)
        except (OSError, DataError) as exc:
            if skip_bad:
                continue
            if isinstance(exc, DataError):
                raise
            raise decode_error(exc, data, what=ds.item_name(i), dataset=getattr(ds, "root", None) or ds.path,
                               options=getattr(ds, "check_options", ())) from None
    return sizes, len(sizes)


def _split_info(ds: Any, limit: int, skip_bad: bool = False) -> dict[str, Any]:
    info = ds.describe()
    caps = [len(ds.captions_of(i)) for i in range(len(ds))]
    info["captions_per_image"] = [min(caps), max(caps)] if caps else None
    if hasattr(ds, "image_bytes"):
        sizes, sampled = _stored_sizes(ds, limit, skip_bad)
        info["image_size"] = _size_range(sizes)
        info["image_size_sampled"] = sampled
    return info


CHECK_SHOWN = 20
"""Undecodable images listed by ``data info --check`` (then a count of the rest)."""


def _check_images(datasets: list[Any]) -> dict[str, Any]:
    """``--check``: decode every image of ``datasets`` (each once), with a progress bar on stderr."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ganreg.data.check import find_undecodable, image_items

    total = len(image_items(datasets))
    columns = (TextColumn("decoding images"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=_console(), transient=True) as bar:
        task = bar.add_task("decode", total=total)
        checked, problems = find_undecodable(datasets, progress=lambda k: bar.advance(task, k))
    return {"images": checked, "undecodable": [{"image": w, "reason": r} for w, r in problems]}


def _check_error(desc: dict[str, Any]) -> DataError:
    check = desc["check"]
    bad = check["undecodable"]
    lines = [f"{len(bad)} of {check['images']} images in {desc['path']} do not decode:"]
    lines += [f"  {b['image']}: {b['reason']}" for b in bad[:CHECK_SHOWN]]
    if len(bad) > CHECK_SHOWN:
        lines.append(f"  ... and {len(bad) - CHECK_SHOWN} more (--json lists all)")
    if desc["source"] == "hdf5":
        fix = "re-create the file from good images (ganreg data make hdf5 --from FOLDER), or re-download it"
    else:
        them = "it" if len(bad) == 1 else "them"
        fix = f"replace {them} with good copies (re-download {them}), or delete each one together with its caption file"
    return DataError("\n".join(lines), fix + "; then run the check again")


def describe_path(
    path: str,
    *,
    size: int = 64,
    count: int = 10000,
    seed: int = 0,
    limit: int = 500,
    images_dir: str | None = None,
    captions_dir: str | None = None,
    check: bool = False,
) -> dict[str, Any]:
    """What ``ganreg data info`` prints, as a dict. ``check``: decode every image of every split;
    the result is under ``"check"`` (``{"images": N, "undecodable": [{"image", "reason"}, ...]}``)."""
    if path == "shapes":
        return _describe_shapes(size, count, seed, check)
    p = Path(path).expanduser()  # as data.path in a recipe is read (a quoted '~/data' reaches us as it is)
    if not p.exists():
        raise DataError(f"{p.absolute()} does not exist", "give an HDF5 file, a dataset folder, or 'shapes'")
    if p.is_file():
        if images_dir is not None or captions_dir is not None:
            raise UserError(f"{p} is an HDF5 file", "--images-dir and --captions-dir are for dataset folders")
        return _describe_hdf5(p, limit, check)
    return _describe_folder(p, limit, images_dir, captions_dir, check)


def _describe_shapes(size: int, count: int, seed: int, check: bool) -> dict[str, Any]:
    """The built-in shapes' splits, from their specs alone (nothing is drawn)."""
    from ganreg.data.shapes import ATTRIBUTES, CAPTIONS_PER_IMAGE, all_specs, class_names, class_split

    specs = all_specs(seed, count)
    names = class_names()
    train, test = class_split(seed)
    splits = {}
    for split, classes in (("train", train), ("test", test)):
        mine = [s for s in specs if s.label in set(classes)]
        splits[split] = {
            "split": split,
            "images": len(mine),
            "captions": len(mine) * CAPTIONS_PER_IMAGE,
            "classes": len(classes),
            "class_examples": [names[k] for k in classes[:5]],
            "example_captions": [s.captions[0] for s in mine[:3]],
            "embedding_dim": None,
            "captions_per_image": [CAPTIONS_PER_IMAGE, CAPTIONS_PER_IMAGE],
            "image_size": {"min": [size, size], "max": [size, size]},
        }
    out: dict[str, Any] = {
        "path": "shapes",
        "source": "shapes",
        "seed": seed,
        "classes": len(names),
        "attributes": {k: list(v) for k, v in ATTRIBUTES.items()},
        "splits": splits,
    }
    if check:
        out["check"] = {"images": 0, "undecodable": [], "note": "shapes are drawn, not decoded from files"}
    return out


def _describe_hdf5(p: Path, limit: int, check: bool) -> dict[str, Any]:
    """An HDF5 file's splits, from its index (no image is decoded unless ``check``)."""
    from ganreg.data.hdf5 import HDF5Dataset, load_index

    index = load_index(p)
    datasets = {s: HDF5Dataset(p, s) for s in index["splits"]}
    out: dict[str, Any] = {"path": str(p), "source": "hdf5", "embedding_dim": index["embedding_dim"]}
    if check:
        out["check"] = _check_images(list(datasets.values()))
    out["splits"] = {s: _split_info(ds, limit, skip_bad=check) for s, ds in datasets.items()}
    if not index.get("has_classes", True):
        out["notes"] = ["no classes: converted from captioned images without class folders, every image is its own class"]
    return out


def _describe_folder(p: Path, limit: int, images_dir: str | None, captions_dir: str | None, check: bool) -> dict[str, Any]:
    """A dataset folder's layout (which files give the captions and splits), its splits and the notes on
    what it lacks."""
    from ganreg.data.folder import FolderDataset
    from ganreg.data.folder_layout import FolderLayout

    layout = FolderLayout(p, images_dir=images_dir, captions_dir=captions_dir)
    if not layout.split_files and not layout.unlabelled:
        raise layout.missing_split_error("train")
    datasets = {s: FolderDataset(p, s, images_dir=images_dir, captions_dir=captions_dir) for s in _folder_splits(layout)}
    out: dict[str, Any] = {
        "path": str(p),
        "source": "folder",
        "images_dir": str(layout.images.relative_to(layout.root)),
        "captions_dir": str(layout.captions.relative_to(layout.root)),
        **({"captions_file": str(layout.metadata.relative_to(layout.root))} if layout.metadata is not None else {}),
        **({"caption_tables": {s: str(t.relative_to(layout.root)) for s, t in layout.split_tables.items()}}
           if layout.split_tables else {}),
        **({"image_lists": {s: str(f.relative_to(layout.root)) for s, f in layout.list_files.items()}}
           if layout.image_lists else {}),
        "split_files": {s: str(f.relative_to(layout.root)) for s, f in layout.split_files.items()},
    }
    if check:
        out["check"] = _check_images(list(datasets.values()))
    out["splits"] = {s: _split_info(ds, limit, skip_bad=check) for s, ds in datasets.items()}
    out["notes"] = _folder_notes(layout)
    return out


def _folder_notes(layout: Any) -> list[str]:
    """What a folder lacks that `ganreg run` or the user would trip over later: a split without a class
    list (`run` refuses it), images that no caption file names (never used), a valid split that is not
    held out (trainvalclasses.txt holds its classes)."""
    from ganreg.data._util import is_hidden
    from ganreg.data.folder_files import IMAGE_EXTS, is_caption_name
    from ganreg.data.metadata import image_extensions, read_metadata

    def visible(paths: Any, under: Path) -> list[Path]:
        """``paths`` but hidden files and the files of run directories (a run's samples are no data)."""
        files = list(paths)
        runs = {f.parent for f in files if f.name == "run.json"}
        return [f for f in files if not any(is_hidden(part) for part in f.relative_to(under).parts)
                and not runs.intersection(f.parents)]

    notes = [_no_classes_line(layout)] if layout.unlabelled else [
        f"no class list for the '{split}' split (looked for {' or '.join(layout.split_file_candidates.get(split, []))}): "
        f"it is not shown, and `ganreg run` on this folder needs it"
        for split in ("train", "test") if split not in layout.split_files
    ]
    images = visible(layout.images.rglob("*"), layout.images)
    tables = [layout.metadata] if layout.metadata is not None else list(layout.split_tables.values())
    if tables:
        in_table = {(t.parent / f).resolve() for t in tables for f in read_metadata(t)}
        readable = image_extensions()
        uncaptioned = [f for f in images if f.suffix.lower() in readable and f.resolve() not in in_table]
        lacking = f"no row in {' or '.join(str(t.relative_to(layout.root)) for t in tables)}"
    else:
        texts = [t for t in visible(layout.captions.rglob("*"), layout.captions) if is_caption_name(t.name)]
        captioned = {t.stem.lower() for t in texts}
        uncaptioned = [f for f in images if f.suffix.lower() in IMAGE_EXTS and f.stem.lower() not in captioned]
        lacking = "no caption file"
    if uncaptioned:
        notes.append(
            f"{len(uncaptioned)} image(s) have {lacking} and are not used (first: {uncaptioned[0].relative_to(layout.root)})"
        )
    pools = {} if layout.unlabelled else layout.class_pools(disjoint=False)
    if "valid" in pools and "train" in pools and set(pools["valid"]) <= set(pools["train"]):
        files = layout.split_files
        notes.append(
            f"the valid classes ({files['valid'].name}) are all training classes too ({files['train'].name}, "
            "Reed et al.'s train+val protocol): valid is not held out, test is"
        )
    return notes


@data.command("info")
@click.argument("path")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option(
    "--check",
    is_flag=True,
    help="Decode every image of every split (in a few worker processes when there are many) and list all that "
    "do not decode; exit code 2 if any does not.",
)
@click.option(
    "--images-dir", default=None, help="Folder dataset: image folder under PATH (default: images/, jpg/ or CUB's)."
)
@click.option(
    "--captions-dir", default=None, help="Folder dataset: caption folder under PATH (default: text_c10/ or text/)."
)
@click.option("--size", default=64, show_default=True, type=click.IntRange(32, 256), help="shapes: image side.")
@click.option("--count", default=10000, show_default=True, type=click.IntRange(48), help="shapes: images.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="shapes: seed.")
@click.option(
    "--sample", default=500, show_default=True, type=click.IntRange(1), help="Images per split read for sizes."
)
def info(
    path: str,
    as_json: bool,
    check: bool,
    images_dir: str | None,
    captions_dir: str | None,
    size: int,
    count: int,
    seed: int,
    sample: int,
) -> None:
    """Describe PATH: an HDF5 file, a dataset folder, or 'shapes' (the built-in set).

    Shows each split's images, captions and classes, the class list files a
    folder's splits come from, the stored image sizes (read from the headers
    of up to --sample images a split), the embedding size and example
    captions. Only --check decodes every image.
    """
    with _options_in_errors({"data.path": "PATH", **_FOLDER_OPTIONS}):
        desc = describe_path(
            path,
            size=size,
            count=count,
            seed=seed,
            limit=sample,
            images_dir=images_dir,
            captions_dir=captions_dir,
            check=check,
        )
    _show(desc, as_json)
    result = desc.get("check")
    if result is not None and result["undecodable"]:
        raise _check_error(desc)


def _show(desc: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(desc, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    con = Console()
    head = f"[bold]{escape(str(desc['path']))}[/] ({desc['source']})"
    if desc.get("embedding_dim"):
        head += f", embeddings {desc['embedding_dim']}-d"
    con.print(head)
    if desc.get("split_files"):
        con.print(_class_lists_line(desc["split_files"]), highlight=False, markup=False)
    table = Table("split", "images", "captions", "per image", "classes", "image size", "examples of classes")
    for s, d in desc["splits"].items():
        sz = d.get("image_size")
        size_txt = (
            "-"
            if not sz
            else (
                f"{sz['min'][0]}x{sz['min'][1]}"
                if sz["min"] == sz["max"]
                else f"{sz['min'][0]}x{sz['min'][1]} .. {sz['max'][0]}x{sz['max'][1]}"
            )
        )
        if d.get("image_size_sampled") and d["image_size_sampled"] < d["images"]:
            size_txt += f" ({d['image_size_sampled']} sampled)"
        cpi = d.get("captions_per_image") or ["-", "-"]
        table.add_row(
            s,
            str(d["images"]),
            str(d["captions"]),
            str(cpi[0]) if cpi[0] == cpi[1] else f"{cpi[0]}-{cpi[1]}",
            "none" if d["classes"] is None else str(d["classes"]),
            size_txt,
            Text(", ".join(d["class_examples"][:3])),  # class folder names are the user's text, not markup
        )
    con.print(table)
    for s, d in desc["splits"].items():
        for c in d["example_captions"][:2]:
            con.print(f"  [dim]{s}:[/] {escape(c)}", emoji=False)
    if desc.get("attributes"):
        con.print("attributes: " + "; ".join(f"{k}: {', '.join(v)}" for k, v in desc["attributes"].items()), markup=False)
    for note in desc.get("notes", []):
        con.print(f"[yellow]note:[/] {escape(note)}", highlight=False, emoji=False)
    result = desc.get("check")
    if result is not None and not result["undecodable"]:
        con.print(escape(result["note"]) if result.get("note") else f"[green]all {result['images']} images decode[/]")

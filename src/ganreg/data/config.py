"""The ``data`` section of a recipe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_SPLIT_FILES: dict[str, list[str]] = {
    "train": ["trainvalclasses.txt", "trainclasses.txt", "train/filenames.pickle"],
    "valid": ["valclasses.txt"],
    "test": ["testclasses.txt", "test/filenames.pickle"],
}
"""Reed et al.'s class lists first, then StackGAN / AttnGAN / DF-GAN's ``<split>/filenames.pickle``
(``<class>/<image>`` names: the split's classes are their class folders)."""


class DataConfig(BaseModel):
    """Where the images and captions come from, and how they are prepared."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["shapes", "hdf5", "folder"] = Field(
        "shapes",
        description="shapes: built-in captioned shapes (no download); hdf5: a file in the seed projects' layout "
        "(aelnouby/Text-to-Image-Synthesis converters); folder: images + text_c10 caption files + class split "
        "files, as Oxford-102 / CUB unpack, or your own images with a caption file beside each (photo.jpg + "
        "photo.txt), in no classes: every image its own class, a random tenth held out.",
    )
    path: str | None = Field(
        None, description="hdf5: the .h5/.hdf5 file; folder: the dataset root. Required for both; unused by shapes."
    )
    image_size: int = Field(64, ge=32, le=256, description="Images are resized (bicubic) to image_size x image_size.")
    num_images: int = Field(
        10000, ge=48, le=1_000_000, description="shapes only: images generated over all 48 classes (train gets ~38/48)."
    )
    seed: int = Field(
        0,
        ge=0,
        description="Seeds the shapes images and class split, the class subsets, and every per-item random choice "
        "(caption, wrong image, flip), together with the epoch and the index.",
    )
    num_classes: int | None = Field(
        None,
        ge=1,
        description="Keep a random subset of this many training classes (drawn from `seed`). None: all. A folder "
        "of captions in no class folders counts images: None = all but the held-out ones.",
    )
    test_classes: int | None = Field(
        None,
        ge=1,
        description="Keep a random subset of this many test classes (drawn from `seed`). None: all. A folder of "
        "captions in no class folders counts images: None = a tenth of them (at least one).",
    )
    class_split: Literal["files", "random"] = Field(
        "files",
        description="files: the splits given by the source (HDF5 groups, class split files, shapes' 38/10). "
        "random: pool the classes of every split and draw `num_classes` train and `test_classes` test classes, "
        "disjoint (as seed 001's 20 train + 5 test of Oxford-102); both must then be set.",
    )
    max_words: int = Field(
        18, ge=1, le=512, description="Captions longer than this keep max_words of their words (see long_captions)."
    )
    long_captions: Literal["first", "random"] = Field(
        "first",
        description="Which max_words words a longer caption keeps: its first ones, or (DF-GAN / AttnGAN) a random "
        "subset in their order, drawn per item and epoch (any word may go, e.g. a shapes caption's colour). "
        "Captions with precomputed embeddings (hdf5) stay whole.",
    )
    min_word_count: int = Field(
        1, ge=1, description="Words seen fewer times than this in the captions map to <unk> in the vocabulary."
    )
    flip: bool = Field(False, description="Random horizontal flips (not for shapes: captions name left/right).")
    random_crop: float = Field(
        1.0,
        ge=1.0,
        le=2.0,
        description="hdf5/folder: > 1 resizes each image's shorter side to int(image_size * random_crop) (bilinear, "
        "aspect kept) and cuts a random image_size square, as StackGAN, AttnGAN and DF-GAN do with 76/64 = 1.1875. "
        "Evaluation uses the centre square (and no flips). 1: no crop, images squashed (bicubic) to the square.",
    )
    crop: Literal["none", "bbox"] = Field(
        "none",
        description="folder only: 'bbox' first cuts CUB's 1.5x square around each bird's bounding box (StackGAN, "
        "AttnGAN, DF-GAN), from CUB_200_2011/images.txt + bounding_boxes.txt under data.path.",
    )
    num_workers: int = Field(
        0, ge=0, le=64, description="DataLoader worker processes (0: load in the main process); at most the CPUs available."
    )
    cache_dir: str | None = Field(
        None,
        description="Where generated shapes and file indexes are cached. None: $GANREG_CACHE, $XDG_CACHE_HOME/ganreg "
        "or ~/.cache/ganreg.",
    )
    images_dir: str | None = Field(
        None,
        description="folder only: image folder relative to `path`. None: the first of images/, jpg/, "
        "CUB_200_2011/images/, oxford-102-flowers/images/ that exists (else, for captions beside the images, `path`). Images are found as "
        "<images_dir>/<class>/<stem>.jpg or <images_dir>/<stem>.jpg (also .jpeg/.png/.webp/.bmp/.tif/.tiff).",
    )
    captions_dir: str | None = Field(
        None,
        description="folder only: caption folder relative to `path`: <class>/<image stem>.txt, one per line, or "
        "<image stem>.txt in no class folders (no classes). None: text_c10/ (Reed et al.), else text/ (AttnGAN / "
        "DF-GAN's download), else a metadata.jsonl / metadata.csv (file_name, text: Hugging Face's imagefolder) in `path` "
        "or the image folder, else beside the images.",
    )
    split_files: dict[Literal["train", "valid", "test"], list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_SPLIT_FILES.items()},
        description="folder only: class-list files (one class folder per line) of each split, relative to `path`; "
        "the first that exists is used. Default trains on train+val classes (Reed et al.'s protocol); a "
        "<split>/filenames.pickle (DF-GAN's download) gives the classes of its <class>/<image> names.",
    )

    @field_validator("split_files", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, v: object) -> object:
        if isinstance(v, dict):
            return {k: [x] if isinstance(x, str) else x for k, x in v.items()}
        return v

    @model_validator(mode="after")
    def _check(self) -> DataConfig:
        if self.source in ("hdf5", "folder") and not self.path:
            raise ValueError(f"data.path is required for source '{self.source}' (the {self._what()})")
        if self.source == "shapes" and self.path:  # else a user's own data is silently replaced by the shapes
            suffix = self.path.lower().rsplit(".", 1)[-1]
            guess = "hdf5" if suffix in ("h5", "hdf5") else "folder"
            raise ValueError(
                f"data.path is set ({self.path}) but data.source is 'shapes', the built-in dataset, which reads no "
                f"files: set data.source to '{guess}' (--set data.source={guess}), or drop data.path"
            )
        if self.flip and self.source == "shapes":
            raise ValueError("flip must be false for source 'shapes': its captions name left and right positions")
        if self.random_crop > 1.0 and self.source == "shapes":
            raise ValueError("random_crop must be 1 for source 'shapes': its captions name positions and sizes")
        if self.crop == "bbox" and self.source != "folder":
            raise ValueError(
                f"crop 'bbox' needs source 'folder' (CUB's bounding-box tables); source '{self.source}' has none"
            )
        if self.class_split == "random" and (self.num_classes is None or self.test_classes is None):
            raise ValueError("class_split 'random' needs both num_classes and test_classes")
        return self

    def _what(self) -> str:
        return "HDF5 file" if self.source == "hdf5" else "dataset root folder"

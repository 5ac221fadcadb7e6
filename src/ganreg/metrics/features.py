"""Feature extractors behind one interface: images in [-1, 1] -> features (and logits for IS).

Two are built in:

* ``classifier``: the penultimate layer of the real-data classifier
  (:mod:`ganreg.metrics.classifier`); offline, trained once per dataset;
  its class head's logits serve IS.
* ``inception``: the TF-FID InceptionV3 network of torch-fidelity (what pytorch-fid
  and most papers since StackGAN++ use; pool3, 2048-d; ``logits_unbiased`` for
  IS), through torchmetrics' ``NoTrainInceptionV3``, resized to 299 px as
  torch-fidelity and the original TF FID resize (TF1-style bilinear, no
  antialiasing: torchmetrics' default antialiased resize gives FIDs that do not
  compare with published ones).
* ``inception-torchvision``: torchvision's ImageNet InceptionV3, the network of
  DF-GAN's FID (reference §2.5: an early pytorch-fid ``InceptionV3`` built on
  ``inception_v3(pretrained=True)``), with DF-GAN's preprocessing; its
  published ``*_val256_FIDK0.npz`` statistics were made with it.

Weights are fetched once into the cache; offline, the error says where to put the file.

An extractor is an ``nn.Module`` (``forward(images) -> features``, attribute
``num_features``), so it can also be handed straight to torchmetrics'
``FrechetInceptionDistance(feature=...)``.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganreg.atomic import make_folder
from ganreg.data.config import DataConfig
from ganreg.errors import UserError
from ganreg.metrics.cache import cache_root, sha256_file
from ganreg.metrics.classifier import CLASS_HEAD, TrainedClassifier

EXTRACTORS = ("classifier", "inception", "inception-torchvision")

INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" + INCEPTION_FILE
TORCHVISION_INCEPTION_FILE = "inception_v3_google-0cc3c7bd.pth"
TORCHVISION_INCEPTION_URL = "https://download.pytorch.org/models/" + TORCHVISION_INCEPTION_FILE


class FeatureExtractor(nn.Module):
    """Base: ``forward(images [B, 3, S, S] in [-1, 1]) -> [B, num_features]``."""

    name: str = "?"
    num_features: int = 0

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Features, and class logits for the Inception Score when the extractor has them."""
        return self(images), None

    def protocol(self) -> dict[str, Any]:  # pragma: no cover - interface
        """Name, weights file and sha256, input size and resize: what a number must state."""
        raise NotImplementedError


class ClassifierFeatures(FeatureExtractor):
    """Penultimate features (and class logits) of the real-data classifier."""

    name = "classifier"

    def __init__(self, trained: TrainedClassifier) -> None:
        super().__init__()
        self.trained = trained
        self.model = trained.model.eval()
        self.num_features = self.model.num_features

    def train(self, mode: bool = True) -> ClassifierFeatures:
        return super().train(False)  # BatchNorm statistics are part of the protocol: never train mode

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model.features(images)

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        feats, logits = self.model(images)
        return feats, logits[CLASS_HEAD]

    def protocol(self) -> dict[str, Any]:
        return {**self.trained.protocol(), "is_logits": f"classifier class head ({len(self.trained.class_names)} classes)"}


def inception_weights(
    config: DataConfig | None = None, download: bool = True, file: str = INCEPTION_FILE, url: str = INCEPTION_URL
) -> Path:
    """An Inception weights file (TF-FID by default): the ganreg cache, then torch hub's; else downloaded once."""
    folder = (cache_root(config) if config is not None else cache_root(DataConfig())) / "weights"
    candidates = [folder / file, Path(torch.hub.get_dir()) / "checkpoints" / file]
    for path in candidates:
        if path.is_file():
            return path
    target = candidates[0]
    fix = (
        f"download {url} on a machine with internet and copy it to {target}, "
        "or, on data with classes, use --extractor classifier (offline; trained on the dataset's real images)"
    )
    if not download or os.environ.get("GANREG_OFFLINE"):
        raise UserError(f"the Inception weights are not in the cache ({target})", fix)
    make_folder(target.parent)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as exc:  # offline, proxy, DNS, HTTP errors all end here
        raise UserError(f"could not download the Inception weights ({type(exc).__name__}: {exc})", fix) from None
    return target


class InceptionFeatures(FeatureExtractor):
    """torch-fidelity's TF-FID InceptionV3 network, run as torch-fidelity runs it: pool3 (2048) features and
    unbiased logits (1008), the uint8 images resized to 299 px with the TF1-style bilinear resize of the
    original TF FID code. Recent torchmetrics resize with PyTorch's antialiased bilinear by default,
    which at 64 px moves pixels by about 12/255 on average: FIDs that are then not comparable with
    published ones, so it is turned off where torchmetrics offers the switch."""

    name = "inception"
    num_features = 2048

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from torchmetrics.image.fid import NoTrainInceptionV3

        tf1_resize = {"antialias": False} if "antialias" in inspect.signature(NoTrainInceptionV3).parameters else {}
        try:
            self.net = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048", "logits_unbiased"],
                feature_extractor_weights_path=str(weights), **tf1_resize,
            )
        except ModuleNotFoundError:
            raise UserError(
                "the inception extractor needs torch-fidelity, which is not installed",
                "pip install torch-fidelity, or use --extractor classifier",
            ) from None
        self.weights = weights
        self.sha256 = sha256_file(weights)

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        from ganreg.metrics.classifier import to_uint8

        # torchmetrics' forward returns only the first requested output; its
        # torch-fidelity forward returns both from one pass.
        feats, logits = self.net._torch_fidelity_forward(to_uint8(images))
        return feats.reshape(images.shape[0], -1), logits.reshape(images.shape[0], -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[0]

    def protocol(self) -> dict[str, Any]:
        return {
            "name": "inception",
            "weights": str(self.weights),
            "sha256": self.sha256,
            "variant": "torch-fidelity TF-FID InceptionV3 (pytorch-fid weights), pool3 2048-d",
            "input_size": 299,
            "resize": "[-1, 1] -> uint8, then TF1-style bilinear to 299 px (torch-fidelity's, as the original TF FID)",
            "feature_dim": 2048,
            "is_logits": "logits_unbiased (1008 ImageNet classes)",
        }


class TorchvisionInceptionFeatures(FeatureExtractor):
    """torchvision's ImageNet InceptionV3 as DF-GAN's FID runs it: pool3 (2048) features, ImageNet logits.

    DF-GAN (``code/lib/modules.py: calculate_fid``) maps [-1, 1] to [0, 1], resizes bilinearly to
    299 x 299, and its pytorch-fid-style wrapper maps back to [-1, 1] before the network, with
    torchvision's ``transform_input`` off; features are the global average pool."""

    name = "inception-torchvision"
    num_features = 2048

    def __init__(self, weights: Path) -> None:
        super().__init__()
        from torchvision.models import Inception3

        self.net = Inception3(num_classes=1000, aux_logits=True, transform_input=False, init_weights=False)
        try:
            self.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        except Exception as exc:  # truncated download, another network's file
            raise UserError(
                f"{weights} is not torchvision's InceptionV3 ImageNet weights ({type(exc).__name__})",
                f"delete it and download {TORCHVISION_INCEPTION_URL} again",
            ) from None
        self.fc = self.net.fc
        self.net.fc = nn.Identity()  # the forward then ends at the pooled (dropout-free in eval) features
        self.weights = weights
        self.sha256 = sha256_file(weights)
        self.eval()

    def train(self, mode: bool = True) -> TorchvisionInceptionFeatures:
        return super().train(False)

    def features_and_logits(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = (images.float() + 1.0) / 2.0
        x = torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        feats = self.net(2.0 * x - 1.0)
        return feats, self.fc(feats)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features_and_logits(images)[0]

    def protocol(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "weights": str(self.weights),
            "sha256": self.sha256,
            "variant": "torchvision ImageNet InceptionV3 (inception_v3_google), pool3 2048-d: DF-GAN's FID network",
            "input_size": 299,
            "resize": "[-1, 1] -> [0, 1], bilinear (align_corners=False) to 299 px, -> [-1, 1] (DF-GAN calculate_fid)",
            "feature_dim": 2048,
            "is_logits": "fc (1000 ImageNet classes)",
        }


def build_extractor(
    name: str, config: DataConfig, classifier: TrainedClassifier | None = None, download: bool = True
) -> FeatureExtractor:
    """The named extractor; ``classifier`` must be given for ``classifier``."""
    if name == "classifier":
        if classifier is None:
            raise ValueError("the classifier extractor needs the trained classifier")
        return ClassifierFeatures(classifier)
    if name == "inception":
        import importlib.util

        if importlib.util.find_spec("torch_fidelity") is None:
            raise UserError(
                "the inception extractor needs torch-fidelity, which is not installed",
                "pip install torch-fidelity, or use --extractor classifier (offline)",
            )
        return InceptionFeatures(inception_weights(config, download))
    if name == "inception-torchvision":
        path = inception_weights(config, download, TORCHVISION_INCEPTION_FILE, TORCHVISION_INCEPTION_URL)
        return TorchvisionInceptionFeatures(path)
    raise UserError(f"unknown feature extractor {name!r}", f"use one of: {', '.join(EXTRACTORS)}")

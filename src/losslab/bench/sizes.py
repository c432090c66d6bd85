"""Benchmark sizes: a label, the kind of loss it is for, and the main input's shape."""

from __future__ import annotations

from dataclasses import dataclass

from losslab.registry import LossInfo


@dataclass(frozen=True)
class SizeSpec:
    """A benchmark size: ``kind`` is elementwise, multiclass, embedding or segmentation."""

    label: str
    kind: str
    shape: tuple[int, ...]


SIZES: dict[str, SizeSpec] = {
    spec.label: spec
    for spec in (
        SizeSpec("1M", "elementwise", (1_000_000,)),
        SizeSpec("10M", "elementwise", (10_000_000,)),
        SizeSpec("4096x10", "multiclass", (4096, 10)),
        SizeSpec("4096x1000", "multiclass", (4096, 1000)),
        # a language model's vocabulary at a short sequence (65 MB of float32 logits)
        SizeSpec("512x32000", "multiclass", (512, 32000)),
        SizeSpec("1024x256", "embedding", (1024, 256)),
        # pytorch-metric-learning's NT-Xent forms every (positive, negative) pair: 34 GB at
        # B=1024, so its ratio is measured at a batch where it runs
        SizeSpec("256x256", "embedding", (256, 256)),
        SizeSpec("16x4x64x64", "segmentation", (16, 4, 64, 64)),
        SizeSpec("tiny-elementwise", "elementwise", (64,)),
        SizeSpec("tiny-multiclass", "multiclass", (8, 5)),
        SizeSpec("tiny-embedding", "embedding", (16, 8)),
        SizeSpec("tiny-segmentation", "segmentation", (2, 3, 4, 4)),
    )
}
DEFAULT_SIZES: tuple[str, ...] = ("1M", "10M", "4096x10", "4096x1000", "512x32000", "1024x256", "256x256", "16x4x64x64")
TINY_SIZES: tuple[str, ...] = tuple(label for label in SIZES if label.startswith("tiny-"))

_FAMILY_KIND = {
    "binary": "elementwise",
    "regression": "elementwise",
    "margin": "elementwise",
    "classification": "multiclass",
    "embedding": "embedding",
    "segmentation": "segmentation",
}


def kind_of(info: LossInfo) -> str:
    """The size kind a loss is benchmarked at (from its family)."""
    return _FAMILY_KIND[info.family]


def classes_for(spec: SizeSpec) -> int:
    """The number of classes at a size: the class dimension of class logits; for embeddings
    about eight samples per class, so that positives exist."""
    if spec.kind in ("multiclass", "segmentation"):
        return spec.shape[1]
    return max(2, spec.shape[0] // 8)

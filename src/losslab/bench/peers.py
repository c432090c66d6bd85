"""The baselines a loss is timed against: torch's built-in, the peer library's implementation
and the memory-bandwidth bound."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from losslab.bench.sizes import SizeSpec, classes_for
from losslab.registry import LossInfo

Baseline = Callable[[tuple[Tensor, ...]], Tensor]

# Losses that wrap a torch function: (the function with the registry defaults, its name).
_TORCH_WRAPPED: dict[str, tuple[Callable[..., Tensor], str]] = {
    "cross_entropy": (F.cross_entropy, "F.cross_entropy"),
    "binary_cross_entropy": (F.binary_cross_entropy_with_logits, "F.binary_cross_entropy_with_logits"),
    "kl_div": (lambda x, y: F.kl_div(x, y, reduction="batchmean"), "F.kl_div(reduction='batchmean')"),
    "multi_margin": (F.multi_margin_loss, "F.multi_margin_loss"),
    "mse": (F.mse_loss, "F.mse_loss"),
    "mae": (F.l1_loss, "F.l1_loss"),
    "huber": (F.huber_loss, "F.huber_loss"),
    "smooth_l1": (F.smooth_l1_loss, "F.smooth_l1_loss"),
    "margin_ranking": (F.margin_ranking_loss, "F.margin_ranking_loss"),
    "triplet_margin": (F.triplet_margin_loss, "F.triplet_margin_loss"),
}


def torch_baseline(info: LossInfo, args: tuple[Tensor, ...]) -> tuple[Baseline | None, str]:
    """(baseline on the same tensors, its description) or (None, the reason there is none)."""
    name = info.name
    if name in _TORCH_WRAPPED:
        function, text = _TORCH_WRAPPED[name]
        return (lambda a: function(*a)), f"{text} (the wrapped function)"
    if name in ("smae", "log_cosh"):
        # BCE needs a target in [0, 1]: the same target through a sigmoid, made once.
        probabilities = torch.sigmoid(args[1].detach())
        return (lambda a: F.binary_cross_entropy_with_logits(a[0], probabilities)), \
            "F.binary_cross_entropy_with_logits (target sigmoid-mapped into [0, 1])"
    if name in ("hinge", "squared_hinge"):
        labels = (args[1].detach() > 0).to(args[0].dtype)        # made once, outside the timing
        return (lambda a: F.binary_cross_entropy_with_logits(a[0], labels)), \
            "F.binary_cross_entropy_with_logits (the loss a hinge replaces; labels as 0/1)"
    if name == "poly1":
        return (lambda a: F.cross_entropy(*a)), "F.cross_entropy (the loss Poly-1 extends)"
    # Otherwise the loss a sigmoid or softmax loss replaces, on the same logits and targets.
    if info.target_kind == "binary" and info.activation == "sigmoid":
        return (lambda a: F.binary_cross_entropy_with_logits(*a)), "F.binary_cross_entropy_with_logits"
    if info.target_kind == "class_index_or_probabilities" and info.activation == "softmax":
        return (lambda a: F.cross_entropy(*a)), "F.cross_entropy"
    return None, "no torch built-in computes this loss"


def peer_baseline(info: LossInfo, spec: SizeSpec) -> tuple[Baseline | None, str]:
    """The peer library's implementation where one exists (built lazily; None + reason if not)."""
    try:
        return _PEERS[info.name](spec)
    except KeyError:
        return None, "no peer-library implementation known for this loss"
    except ImportError as error:
        return None, f"peer library not installed ({error.name})"


def _pml_triplet(miner: str) -> Callable[[SizeSpec], tuple[Baseline, str]]:
    def build(spec: SizeSpec) -> tuple[Baseline, str]:
        from pytorch_metric_learning import losses, miners

        loss = losses.TripletMarginLoss(margin=1.0)
        mine = miners.BatchHardMiner() if miner == "hard" else miners.TripletMarginMiner(
            margin=1.0, type_of_triplets="all")
        return (lambda args: loss(args[0], args[1], mine(args[0], args[1]))), \
            f"pytorch-metric-learning TripletMarginLoss + {type(mine).__name__}"

    return build


def _pml_ntxent(spec: SizeSpec) -> tuple[Baseline, str]:
    from pytorch_metric_learning import losses

    loss = losses.NTXentLoss(temperature=0.1)

    def call(args: tuple[Tensor, ...]) -> Tensor:
        view1, view2 = args
        labels = torch.arange(view1.shape[0]).repeat(2)
        return loss(torch.cat([view1, view2]), labels)

    return call, "pytorch-metric-learning NTXentLoss"


def _pml_arcface(spec: SizeSpec) -> tuple[Baseline, str]:
    from pytorch_metric_learning import losses

    loss = losses.ArcFaceLoss(classes_for(spec), spec.shape[-1], margin=math.degrees(0.5), scale=64)
    return (lambda args: loss(args[0], args[1])), "pytorch-metric-learning ArcFaceLoss"


def _st_mnr(spec: SizeSpec) -> tuple[Baseline, str]:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(nn.Identity(), scale=20.0)

    def call(args: tuple[Tensor, ...]) -> Tensor:
        labels = torch.arange(args[0].shape[0])
        return loss.compute_loss_from_embeddings(list(args), labels)

    return call, "sentence-transformers MultipleNegativesRankingLoss"


def _pml_contrastive(spec: SizeSpec) -> tuple[Baseline, str]:
    from pytorch_metric_learning import losses

    # losslab's default is the squared form with margin 1 and label 0 = similar; PML's
    # ContrastiveLoss is the unsquared hinge on distances (timing comparison only).
    loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)

    def call(args: tuple[Tensor, ...]) -> Tensor:
        first, second, label = args
        batch = first.shape[0]
        rows = torch.arange(batch)
        similar = label == 0
        pairs = (rows[similar], rows[similar] + batch, rows[~similar], rows[~similar] + batch)
        return loss(torch.cat([first, second]), torch.arange(2 * batch), indices_tuple=pairs)

    return call, "pytorch-metric-learning ContrastiveLoss (pairs as indices_tuple)"


def _monai_dice(spec: SizeSpec) -> tuple[Baseline, str]:
    from monai.losses import DiceLoss

    loss = DiceLoss(softmax=True, to_onehot_y=True, squared_pred=True)
    return (lambda args: loss(args[0], args[1].unsqueeze(1))), "MONAI DiceLoss(softmax, squared_pred)"


def _monai_focal(use_softmax: bool) -> Callable[[SizeSpec], tuple[Baseline, str]]:
    def build(spec: SizeSpec) -> tuple[Baseline, str]:
        from monai.losses import FocalLoss

        if use_softmax:
            loss = FocalLoss(gamma=2.0, use_softmax=True, to_onehot_y=True)
            return (lambda args: loss(args[0], args[1].unsqueeze(1))), "MONAI FocalLoss(use_softmax)"
        loss = FocalLoss(gamma=2.0, alpha=0.25)
        # MONAI wants (N, C, ...): the elementwise tensors as one channel of one sample.
        return (lambda args: loss(args[0].view(1, 1, -1), args[1].view(1, 1, -1))), \
            "MONAI FocalLoss(sigmoid)"

    return build


_PEERS: dict[str, Callable[[SizeSpec], tuple[Baseline, str]]] = {
    "batch_hard_triplet": _pml_triplet("hard"),
    "batch_all_triplet": _pml_triplet("all"),
    "nt_xent": _pml_ntxent,
    "arcface": _pml_arcface,
    "multiple_negatives_ranking": _st_mnr,
    "contrastive": _pml_contrastive,
    "dice": _monai_dice,
    "softmax_focal": _monai_focal(True),
    "sigmoid_focal": _monai_focal(False),
}


def bandwidth_bound(args: tuple[Tensor, ...]) -> Callable[[], None]:
    """One pass reading the first input (and a second input of its size, if any) and writing one
    tensor of that size: ``torch.add(x, y, out=buf)``."""
    first = args[0].detach()
    same = [a.detach() for a in args[1:] if a.shape == first.shape and a.is_floating_point()]
    second = same[0] if same else first
    buffer = torch.empty_like(first)

    def run() -> None:
        torch.add(first, second, out=buffer)

    return run

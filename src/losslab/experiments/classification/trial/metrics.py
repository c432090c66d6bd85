"""Classification metrics of one evaluation pass, computed from logits and class indices.

A loss that scales its gradients by about ``1/p`` (M) or damps them (L) changes calibration as
much as accuracy, so every run records, per epoch, on its evaluation split:

- ``accuracy``: share of samples whose top class is the target;
- ``macro_f1``: the unweighted mean over classes of F1 (a class never predicted nor present
  counts as 0, scikit-learn's ``zero_division=0``; classes absent from both are left out, as
  scikit-learn does with the labels it sees);
- ``balanced_accuracy``: the mean over the classes present of their recall;
- ``nll``: the mean cross-entropy of the softmax (test negative log-likelihood);
- ``ece``: expected calibration error with 15 equal-width confidence bins,
  ``sum_b |B_b|/n · |accuracy(B_b) − confidence(B_b)|`` (top-class confidence);
- ``brier``: the multiclass Brier score, ``mean_i sum_c (p_ic − y_ic)²``;
- ``perplexity``: ``exp(nll)``, the score of a language model (each predicted token a sample).

Everything is computed in float64 from the logits, in one pass, without scikit-learn (the
tests check each against scikit-learn and a hand computation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

ECE_BINS = 15
# The metrics a comparison can decide on, and whether larger is better.
METRICS: dict[str, bool] = {
    "accuracy": True,
    "macro_f1": True,
    "balanced_accuracy": True,
    "nll": False,
    "ece": False,
    "brier": False,
    # Language models (see .language): exp of the mean next-token cross-entropy.
    "perplexity": False,
}
METRIC_NAMES: dict[str, str] = {
    "accuracy": "test accuracy",
    "macro_f1": "macro-F1",
    "balanced_accuracy": "balanced accuracy",
    "nll": "test NLL",
    "ece": "expected calibration error",
    "brier": "Brier score",
    "perplexity": "held-out perplexity",
}


def check_metric(metric: str) -> str:
    """``metric`` if it is one of :data:`METRICS`, else a clear error."""
    if metric not in METRICS:
        raise ValueError(f"metric: expected one of {', '.join(METRICS)}, got {metric!r}")
    return metric


@dataclass
class MetricAccumulator:
    """Sums over evaluation batches; :meth:`result` gives the metrics of the whole split.

    ``num_classes`` is the number of classes of the data; a model may output more scores
    than that (a user's model with spare outputs), and the metrics then use its width.
    """

    num_classes: int
    bins: int = ECE_BINS

    def __post_init__(self) -> None:
        self._allocate(self.num_classes)

    def _allocate(self, c: int) -> None:
        self.num_classes = c
        self.count = 0
        self.nll_sum = 0.0
        self.brier_sum = 0.0
        self.confusion = torch.zeros(c, c, dtype=torch.float64)  # [target, predicted]
        self.bin_count = torch.zeros(self.bins, dtype=torch.float64)
        self.bin_correct = torch.zeros(self.bins, dtype=torch.float64)
        self.bin_confidence = torch.zeros(self.bins, dtype=torch.float64)

    def update(self, logits: Tensor, target: Tensor) -> None:
        """Add a batch: ``logits`` (N, C), ``target`` (N,) class indices."""
        logits = logits.detach().to(torch.float64).cpu()
        target = target.detach().to(torch.long).cpu()
        if logits.shape[1] != self.num_classes:
            if logits.shape[1] < self.num_classes or self.count:
                raise ValueError(f"logits: expected {self.num_classes} class scores per sample, "
                                 f"got {logits.shape[1]}")
            self._allocate(int(logits.shape[1]))
        log_p = torch.log_softmax(logits, dim=1)
        p = log_p.exp()
        self.count += int(target.numel())
        self.nll_sum += float(-log_p.gather(1, target[:, None]).sum())
        one_hot = torch.nn.functional.one_hot(target, self.num_classes).to(torch.float64)
        self.brier_sum += float(((p - one_hot) ** 2).sum())
        confidence, predicted = p.max(dim=1)
        index = target * self.num_classes + predicted
        self.confusion += torch.bincount(index, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes).to(torch.float64)
        # Bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 cannot occur.
        bin_index = (torch.ceil(confidence * self.bins).long() - 1).clamp(0, self.bins - 1)
        correct = (predicted == target).to(torch.float64)
        self.bin_count += torch.bincount(bin_index, minlength=self.bins).to(torch.float64)
        self.bin_correct += torch.bincount(bin_index, weights=correct, minlength=self.bins)
        self.bin_confidence += torch.bincount(bin_index, weights=confidence, minlength=self.bins)

    def result(self) -> dict[str, float]:
        """The metrics of everything added so far (NaN before any sample)."""
        n = self.count
        if n == 0:
            return {name: float("nan") for name in METRICS}
        confusion = self.confusion
        true_positive = confusion.diagonal()
        support = confusion.sum(dim=1)
        predicted = confusion.sum(dim=0)
        seen = (support + predicted) > 0
        f1 = torch.where(support + predicted > 0,
                         2 * true_positive / (support + predicted).clamp_min(1e-300),
                         torch.zeros_like(true_positive))
        present = support > 0
        recall = true_positive[present] / support[present]
        filled = self.bin_count > 0
        gaps = (self.bin_correct[filled] - self.bin_confidence[filled]).abs()
        return {
            "accuracy": float(true_positive.sum() / n),
            "macro_f1": float(f1[seen].mean()),
            "balanced_accuracy": float(recall.mean()),
            "nll": self.nll_sum / n,
            "ece": float(gaps.sum() / n),
            "brier": self.brier_sum / n,
            "perplexity": _exp_or_inf(self.nll_sum / n),
        }

    def reliability(self) -> dict[str, list[float]]:
        """Per confidence bin: its count, accuracy and mean confidence (a reliability diagram)."""
        count = self.bin_count
        safe = count.clamp_min(1.0)
        return {"count": count.tolist(),
                "accuracy": (self.bin_correct / safe).tolist(),
                "confidence": (self.bin_confidence / safe).tolist()}


def classification_metrics(logits: Tensor, target: Tensor, num_classes: int | None = None
                           ) -> dict[str, float]:
    """All of :data:`METRICS` for one set of logits (N, C) and class indices (N,)."""
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, C), got {tuple(logits.shape)}")
    if target.shape != logits.shape[:1]:
        raise ValueError(f"target: expected shape ({logits.shape[0]},) to match logits, got "
                         f"{tuple(target.shape)}")
    accumulator = MetricAccumulator(int(num_classes or logits.shape[1]))
    accumulator.update(logits, target)
    return accumulator.result()


def _exp_or_inf(value: float) -> float:
    """``exp(value)``, infinite past float64's range: a diverged model's perplexity is a value
    the caller judges (as it does a non-finite loss), not an OverflowError."""
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf

"""Registry entries for the embedding / metric-learning losses."""

from __future__ import annotations

import functools

from losslab.functional import embedding as EF
from losslab.nn import embedding as EN
from losslab.registry._core import LossInfo, register

_GATHER = "gather_across_ranks=True all-gathers every rank's embeddings with gradients"

_ENTRIES = [
    LossInfo(
        name="contrastive", family="embedding", target_kind="pairs",
        task="metric learning on labelled pairs (similar / dissimilar)",
        factory=EN.ContrastiveLoss, functional=EF.contrastive_loss,
        input="two embeddings (N, D), (N, D)", target="pair labels (N,) in {0, 1}",
        formula="(1-Y) 0.5 D^2 + Y 0.5 max(0, m - D)^2, Y=0 similar (similar_label=1: Y=1 similar)",
        reference="Hadsell, Chopra, LeCun, CVPR 2006",
        reference_impl="sentence-transformers ContrastiveLoss (cosine, similar_label=1, margin=0.5); "
        "pytorch-metric-learning ContrastiveLoss (squared=False)",
        convex=None, bounded=False,
        notes="Hadsell et al.'s Y=0-similar convention by default; distance 'euclidean' or 'cosine'",
    ),
    LossInfo(
        name="triplet_margin", family="embedding", target_kind="triplets", task="metric learning on (anchor, positive, negative)",
        factory=EN.TripletMarginLoss, functional=EF.triplet_margin_loss,
        input="anchor, positive, negative (N, D) each", target="none (the roles are the target)",
        formula="max(0, margin + d(a, p) - d(a, n)), d(x, y) = ||x - y + eps||_p",
        reference="Schroff et al., FaceNet, CVPR 2015; swap: Balntas et al. 2016",
        reference_impl="torch.nn.functional.triplet_margin_loss",
        convex=None, bounded=False,
        notes="torch's semantics exactly, eps added to the difference", aliases=("triplet",),
    ),
    LossInfo(
        name="batch_hard_triplet", family="embedding", target_kind="embeddings+labels", task="metric learning from class labels",
        factory=EN.BatchHardTripletLoss,
        functional=functools.partial(EF.batch_triplet_loss, mining="hard"),
        input="embeddings (N, D)", target="class labels (N,)",
        formula="mean_a max(0, margin + max_p D(a, p) - min_n D(a, n))",
        reference="Hermans, Beyer, Leibe, arXiv:1703.07737, 2017",
        reference_impl="pytorch-metric-learning TripletMarginLoss + BatchHardMiner (MeanReducer)",
        convex=None, bounded=False,
        notes="no valid triplet gives 0; " + _GATHER,
    ),
    LossInfo(
        name="batch_all_triplet", family="embedding", target_kind="embeddings+labels", task="metric learning from class labels",
        factory=EN.BatchAllTripletLoss,
        functional=functools.partial(EF.batch_triplet_loss, mining="all"),
        input="embeddings (N, D)", target="class labels (N,)",
        formula="mean over valid (a, p, n) of max(0, margin + D(a, p) - D(a, n)) (default: over the non-zero ones)",
        reference="Hermans, Beyer, Leibe, arXiv:1703.07737, 2017",
        reference_impl="pytorch-metric-learning TripletMarginLoss + TripletMarginMiner('all')",
        convex=None, bounded=False,
        notes="no valid triplet gives 0; " + _GATHER,
    ),
    LossInfo(
        name="info_nce", family="embedding", target_kind="positive_pairs", task="contrastive representation learning",
        factory=EN.InfoNCELoss, functional=EF.info_nce_loss,
        input="query (N, D), positive_key (N, D), negative_keys None | (M, D) | (N, M, D)",
        target="none (row i's positive is positive_key[i])",
        formula="-s(q, k+) + log(exp s(q, k+) + sum_k- exp s(q, k-)), s = cos / temperature",
        reference="van den Oord, Li, Vinyals, arXiv:1807.03748, 2018",
        reference_impl=None, convex=None, bounded=False,
        notes="in-batch negatives when negative_keys is None; " + _GATHER,
    ),
    LossInfo(
        name="nt_xent", family="embedding", target_kind="positive_pairs", task="self-supervised contrastive learning (two views)",
        factory=EN.NTXentLoss, functional=EF.nt_xent_loss,
        input="view1 (N, D), view2 (N, D)", target="none (row i of each view is the other's positive)",
        formula="mean over 2N of -s(z_i, z_j(i)) + log sum_{k != i} exp s(z_i, z_k), s = cos / temperature",
        reference="Chen et al., SimCLR, ICML 2020",
        reference_impl="pytorch-metric-learning NTXentLoss", convex=None, bounded=False,
        notes=_GATHER, aliases=("simclr",),
    ),
    LossInfo(
        name="multiple_negatives_ranking", family="embedding", target_kind="positive_pairs",
        task="retrieval / sentence embeddings from positive pairs",
        factory=EN.MultipleNegativesRankingLoss, functional=EF.multiple_negatives_ranking_loss,
        input="anchors (B, D), positives (B, D), negatives None | (B, D) | (B, K, D)",
        target="none (labels arange(B))",
        formula="CE(scale * cos(anchors, [positives; negatives]), arange(B))",
        reference="Henderson et al., arXiv:1705.00652, 2017",
        reference_impl="sentence-transformers MultipleNegativesRankingLoss (symmetric: "
        "MultipleNegativesSymmetricRankingLoss)",
        convex=None, bounded=False,
        notes=_GATHER, aliases=("mnr",),
    ),
    LossInfo(
        name="arcface", family="embedding", target_kind="embeddings+labels", task="classification-based embedding learning (faces, speakers)",
        factory=EN.ArcFaceLoss,
        functional=EF.arcface_loss,
        input="embeddings (N, D) (the functional form also takes centers (C, D))",
        target="class indices (N,)",
        formula="CE(s * [cos(theta_y + m) at y, cos(theta_j) elsewhere], y); cos(theta) - m sin(m) past pi - m",
        reference="Deng et al., ArcFace, CVPR 2019 (arXiv:1801.07698)",
        reference_impl="pytorch-metric-learning ArcFaceLoss (margin in degrees there)",
        convex=None, bounded=False,
        notes="the Module owns the (C, D) class centres; get_loss('arcface', num_classes=C, "
        "embedding_dim=D); float32 under autocast; finite at cos = +-1",
    ),
    LossInfo(
        name="ge2e", family="embedding", target_kind="speakers", task="speaker verification",
        factory=EN.GE2ELoss, functional=EF.ge2e_loss,
        input="embeddings (speakers N, utterances M, D)", target="none (the speaker axis is the label)",
        formula="softmax: -S_ji,j + log sum_k exp S_ji,k; contrast: 1 - sig(S_ji,j) + max_k!=j sig(S_ji,k); "
        "S = w cos(e, c) + b, own centroid excludes the utterance",
        reference="Wan et al., ICASSP 2018 (arXiv:1710.10467)",
        reference_impl="float64 reference from the paper's equations (tests)",
        convex=None, bounded=False,
        notes="learnable w = softplus(w_raw) + min_w > 0 and b; " + _GATHER,
    ),
]

for _info in _ENTRIES:
    register(_info)

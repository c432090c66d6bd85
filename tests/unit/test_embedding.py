"""Embedding / metric losses: equal to torch, pytorch-metric-learning (PML), sentence-transformers
(ST) and float64 references written from the papers; numerics; gradcheck; bad input."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

import losslab.functional as LF
import losslab.nn as LN
from losslab import distances
from losslab.registry import get_info, get_loss, loss_names

DT = torch.float64
TOL = dict(rtol=0, atol=1e-6)


def randn(*shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=DT).requires_grad_(requires_grad)


def close(actual, expected, **tol):
    torch.testing.assert_close(actual, expected, **(tol or TOL))


def grads(loss, *tensors):
    return torch.autograd.grad(loss, tensors)


LABELS = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4])


# --- distances ---------------------------------------------------------------------------------


def test_distance_matrices_match_direct_formulas():
    x, y = randn(5, 3, seed=1), randn(4, 3, seed=2)
    diff = x[:, None, :] - y[None, :, :]
    close(distances.distance_matrix(x, y, metric="euclidean"), diff.norm(dim=-1))
    close(distances.distance_matrix(x, y, metric="squared_euclidean"), diff.square().sum(-1))
    cos = F.cosine_similarity(x[:, None, :], y[None, :, :], dim=-1)
    close(distances.distance_matrix(x, y, metric="cosine_similarity"), cos)
    close(distances.distance_matrix(x, y, metric="cosine"), 1 - cos)
    close(distances.distance_matrix(x, y, metric="dot"), x @ y.T)
    for metric in distances.METRICS:
        row = distances.paired_distance(x[:4], y, metric=metric)
        close(row, distances.distance_matrix(x[:4], y, metric=metric).diagonal())
    assert distances.is_similarity("dot") and not distances.is_similarity("cosine")


@pytest.mark.parametrize("metric", distances.METRICS)
def test_distances_finite_at_zero_norm_and_zero_distance(metric):
    x = torch.zeros(3, 4, dtype=DT)
    x[1] = 1.0
    x = x.requires_grad_(True)
    for value in (distances.distance_matrix(x, metric=metric), distances.paired_distance(x, x.detach().clone(), metric=metric)):
        (g,) = grads(value.sum(), x)
        assert torch.isfinite(value).all() and torch.isfinite(g).all()
    if metric == "euclidean":
        assert distances.distance_matrix(x, metric=metric).diagonal().eq(0).all()


def test_distance_bad_input():
    with pytest.raises(ValueError, match=r"metric: expected one of .*'euclidean'.*got 'manhattan'"):
        distances.distance_matrix(randn(2, 3), metric="manhattan")
    with pytest.raises(ValueError, match=r"y: expected embeddings of dimension D=3 like x, got shape \(2, 4\)"):
        distances.distance_matrix(randn(2, 3), randn(2, 4))
    with pytest.raises(ValueError, match=r"x: expected a 2-D tensor"):
        distances.distance_matrix(randn(3))
    with pytest.raises(TypeError, match=r"x: expected a floating-point tensor"):
        distances.distance_matrix(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x2: expected the shape of x1 \(2, 3\) \(at least 1-D\), got \(3, 3\)"):
        distances.paired_distance(randn(2, 3), randn(3, 3))


# --- triplet: torch ----------------------------------------------------------------------------


@pytest.mark.parametrize("swap", [False, True])
@pytest.mark.parametrize("p", [1.0, 2.0, 3.0, math.inf])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("margin,eps", [(1.0, 1e-6), (0.3, 0.0), (2.5, 1e-3)])
def test_triplet_margin_equals_torch(swap, p, reduction, margin, eps):
    a, pos, neg = (randn(7, 5, seed=s, requires_grad=True) for s in (1, 2, 3))
    ours = LF.triplet_margin_loss(a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)
    ref = F.triplet_margin_loss(a, pos, neg, margin=margin, p=p, eps=eps, swap=swap, reduction=reduction)
    close(ours, ref)
    for g_ours, g_ref in zip(grads(ours.sum(), a, pos, neg), grads(ref.sum(), a, pos, neg)):
        close(g_ours, g_ref)


def test_triplet_margin_unbatched_defaults_and_module():
    a, pos, neg = randn(5, seed=1), randn(5, seed=2), randn(5, seed=3)
    close(LF.triplet_margin_loss(a, pos, neg, reduction="none"), F.triplet_margin_loss(a, pos, neg, reduction="none"))
    a, pos, neg = randn(6, 5, seed=1), randn(6, 5, seed=2), randn(6, 5, seed=3)
    close(LN.TripletMarginLoss(swap=True)(a, pos, neg), torch.nn.TripletMarginLoss(swap=True)(a, pos, neg))
    close(get_loss("triplet")(a, pos, neg), F.triplet_margin_loss(a, pos, neg))



def test_triplet_margin_zero_margin_by_formula():
    # torch's F.triplet_margin_loss rejects margin=0; losslab allows it (margin >= 0).
    a, pos, neg = (randn(7, 5, seed=s, requires_grad=True) for s in (4, 5, 6))
    ours = LF.triplet_margin_loss(a, pos, neg, margin=0.0, reduction="none")
    ref = F.relu((a - pos + 1e-6).norm(dim=1) - (a - neg + 1e-6).norm(dim=1))
    close(ours, ref)
    close(grads(ours.sum(), a)[0], grads(ref.sum(), a)[0])

# --- pytorch-metric-learning ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def pml():
    """pytorch-metric-learning's modules, imported by the tests that use them (not when the
    module is collected: the import takes seconds). ``pml.lp``: PML's LpDistance normalises
    embeddings by default; losslab's "euclidean" does not, so PML gets
    LpDistance(normalize_embeddings=False) (p=2, power=1). PML's triplet reducer defaults to
    AvgNonZeroReducer; MeanReducer gives the plain mean over the mined triplets."""
    from pytorch_metric_learning import distances, losses, miners, reducers

    return SimpleNamespace(distances=distances, losses=losses, miners=miners, reducers=reducers,
                           lp=distances.LpDistance(normalize_embeddings=False))


@pytest.mark.parametrize("margin", [0.2, 1.0, 3.0])
def test_batch_hard_equals_pml_batch_hard_miner(margin, pml):
    x = randn(12, 4, seed=5, requires_grad=True)
    triplets = pml.miners.BatchHardMiner(distance=pml.lp)(x, LABELS)
    pml_loss = pml.losses.TripletMarginLoss(margin=margin, distance=pml.lp, reducer=pml.reducers.MeanReducer())
    ref = pml_loss(x, LABELS, triplets)
    ours = LF.batch_triplet_loss(x, LABELS, mining="hard", margin=margin)
    close(ours, ref)
    close(*[g for g in (grads(ours, x)[0], grads(ref, x)[0])])


@pytest.mark.parametrize("margin", [0.2, 1.0, 3.0])
def test_batch_all_equals_pml(margin, pml):
    x = randn(12, 4, seed=6, requires_grad=True)
    # Batch-all averaged over the non-zero triplets: the miner keeps the margin violators,
    # MeanReducer averages them (PML's default AvgNonZeroReducer without a miner is the same).
    triplets = pml.miners.TripletMarginMiner(margin=margin, type_of_triplets="all", distance=pml.lp)(x, LABELS)
    ref = pml.losses.TripletMarginLoss(margin=margin, distance=pml.lp, reducer=pml.reducers.MeanReducer())(x, LABELS, triplets)
    ours = LF.batch_triplet_loss(x, LABELS, mining="all", margin=margin)
    close(ours, ref)
    close(grads(ours, x)[0], grads(ref, x)[0])
    close(ours, pml.losses.TripletMarginLoss(margin=margin, distance=pml.lp)(x, LABELS))
    # Averaged over all valid triplets: PML with every triplet and MeanReducer.
    ref_all = pml.losses.TripletMarginLoss(margin=margin, distance=pml.lp, reducer=pml.reducers.MeanReducer())(x, LABELS)
    close(LF.batch_triplet_loss(x, LABELS, mining="all", margin=margin, average="all"), ref_all)


def test_batch_triplet_soft_margin_and_cosine_equal_pml(pml):
    x = randn(12, 4, seed=7)
    triplets = pml.miners.BatchHardMiner(distance=pml.lp)(x, LABELS)
    ref = pml.losses.TripletMarginLoss(margin=0.0, smooth_loss=True, distance=pml.lp,
                                       reducer=pml.reducers.MeanReducer())(x, LABELS, triplets)
    close(LF.batch_triplet_loss(x, LABELS, margin=0.0, soft_margin=True), ref)
    # PML's CosineSimilarity is a similarity; cosine distance = 1 - it, so margins agree.
    cs = pml.distances.CosineSimilarity()
    triplets = pml.miners.BatchHardMiner(distance=cs)(x, LABELS)
    ref = pml.losses.TripletMarginLoss(margin=0.3, distance=cs, reducer=pml.reducers.MeanReducer())(x, LABELS, triplets)
    close(LF.batch_triplet_loss(x, LABELS, margin=0.3, distance="cosine"), ref)


def test_batch_hard_reference_loop_and_reductions():
    x = randn(12, 4, seed=8)
    d = torch.cdist(x, x)
    per_anchor = []
    for a in range(12):
        pos = [d[a, p] for p in range(12) if p != a and LABELS[p] == LABELS[a]]
        neg = [d[a, n] for n in range(12) if LABELS[n] != LABELS[a]]
        per_anchor.append(max(0.0, 1.0 + max(pos) - min(neg)) if pos else 0.0)
    per_anchor = torch.tensor(per_anchor, dtype=DT)
    close(LF.batch_triplet_loss(x, LABELS, reduction="none"), per_anchor)
    close(LF.batch_triplet_loss(x, LABELS, reduction="sum"), per_anchor.sum())
    close(LF.batch_triplet_loss(x, LABELS), per_anchor.sum() / 11)  # anchor 11 (label 4) has no positive


@pytest.mark.parametrize("mining", ["hard", "all"])
@pytest.mark.parametrize("labels", [torch.zeros(5, dtype=torch.long), torch.arange(5)])
def test_batch_triplet_without_valid_triplet_is_zero(mining, labels):
    x = randn(5, 3, seed=9, requires_grad=True)
    for reduction in ("mean", "sum"):
        loss = LF.batch_triplet_loss(x, labels, mining=mining, reduction=reduction)
        assert loss.item() == 0.0
        (g,) = grads(loss, x)
        assert torch.equal(g, torch.zeros_like(g))



def _batch_all_cubic_reference(x, labels, margin, soft_margin):
    """Every valid triplet materialised at once, float64: per-anchor sums and the nonzero count."""
    d = (x[:, None, :] - x[None, :, :]).norm(dim=-1)
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(len(labels), dtype=torch.bool)
    valid = positive[:, :, None] & ~same[:, None, :]
    violation = margin + d[:, :, None] - d[:, None, :]
    hinge = F.softplus(violation) if soft_margin else F.relu(violation)
    per_triplet = torch.where(valid, hinge, 0.0)
    return per_triplet.sum((1, 2)), (per_triplet > 0).sum(), valid.sum()


@pytest.mark.parametrize("soft_margin", [False, True])
def test_batch_all_chunked_equals_cubic_reference(monkeypatch, soft_margin):
    # Tiny chunks (a few anchors each, the last one partial) so that the chunk loop and
    # the gradient accumulated across chunks are exercised; duplicated rows give zero distances.
    from losslab.functional import embedding

    monkeypatch.setattr(embedding, "_TRIPLET_CHUNK_ELEMENTS", 2 * 40 * 40)
    labels = torch.randint(0, 6, (39,), generator=torch.Generator().manual_seed(3))
    base = randn(39, 5, seed=15)
    base[1] = base[0]
    x = base.requires_grad_(True)
    for reduction, average, reduce_reference in [
        ("none", "nonzero", lambda terms, nonzero, valid: terms),
        ("sum", "nonzero", lambda terms, nonzero, valid: terms.sum()),
        ("mean", "nonzero", lambda terms, nonzero, valid: terms.sum() / nonzero),
        ("mean", "all", lambda terms, nonzero, valid: terms.sum() / valid),
    ]:
        expected = reduce_reference(*_batch_all_cubic_reference(x, labels, 0.7, soft_margin))
        ours = LF.batch_triplet_loss(x, labels, mining="all", margin=0.7, soft_margin=soft_margin,
                                     average=average, reduction=reduction)
        close(ours, expected)
        weights = torch.linspace(0.5, 2.0, expected.numel(), dtype=DT) if reduction == "none" else 1.0
        close(grads((ours * weights).sum(), x)[0], grads((expected * weights).sum(), x)[0])


def test_batch_hard_finite_and_exact_with_identical_embeddings():
    # Identical positives (zero distance): the mined distance is exactly 0 with a zero
    # subgradient, so the gradient is finite and equals the cdist-based reference.
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    base = randn(6, 4, seed=16)
    base[1] = base[0]
    base[3] = base[2]
    for dtype in (torch.float64, torch.float32):
        x = base.to(dtype).requires_grad_(True)
        ours = LF.batch_triplet_loss(x, labels, margin=50.0, reduction="none")
        d = torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist")
        same = labels[:, None] == labels[None, :]
        hardest_pos = d.masked_fill(~same | torch.eye(6, dtype=torch.bool), -math.inf).amax(1)
        hardest_neg = d.masked_fill(same, math.inf).amin(1)
        ref = F.relu(50.0 + hardest_pos - hardest_neg)
        assert ours[0].item() == ref[0].item() and ours[2].item() == ref[2].item()
        close(ours, ref, rtol=1e-6, atol=1e-5)
        g_ours, g_ref = grads(ours.sum(), x)[0], grads(ref.sum(), x)[0]
        assert torch.isfinite(g_ours).all()
        # A duplicated row mined as a negative is a tie: either copy may take the gradient
        # (amin splits it), so compare the gradient summed over each group of copies.
        groups = torch.tensor([0, 0, 1, 1, 2, 3])
        per_group = [torch.zeros(4, 4, dtype=dtype).index_add_(0, groups, g) for g in (g_ours, g_ref)]
        close(*per_group, rtol=1e-6, atol=1e-5)
    same_point = torch.ones(4, 3, dtype=DT, requires_grad=True)
    loss = LF.batch_triplet_loss(same_point, torch.tensor([0, 0, 1, 1]))
    (g,) = grads(loss, same_point)
    assert loss.item() == 1.0 and torch.isfinite(g).all()

def test_contrastive_equals_pml_unsquared(pml):
    x = randn(12, 4, seed=10, requires_grad=True)
    # PML ContrastiveLoss(pos_margin=0, neg_margin=m) on every ordered pair (a != b), summed:
    # pos term D, neg term max(0, m - D): our squared=False with label 1 = similar.
    ref = pml.losses.ContrastiveLoss(pos_margin=0, neg_margin=1.3, distance=pml.lp,
                                     reducer=pml.reducers.SumReducer())(x, LABELS)
    i, j = torch.triu_indices(12, 12, 1)
    i, j = torch.cat([i, j]), torch.cat([j, i])
    ours = LF.contrastive_loss(x[i], x[j], (LABELS[i] == LABELS[j]).long(), margin=1.3,
                               similar_label=1, squared=False, reduction="sum")
    close(ours, ref)
    close(grads(ours, x)[0], grads(ref, x)[0])


@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_nt_xent_equals_pml(temperature, pml):
    v1, v2 = randn(6, 5, seed=11, requires_grad=True), randn(6, 5, seed=12, requires_grad=True)
    labels = torch.cat([torch.arange(6), torch.arange(6)])
    ref = pml.losses.NTXentLoss(temperature=temperature)(torch.cat([v1, v2]), labels)
    ours = LF.nt_xent_loss(v1, v2, temperature=temperature)
    close(ours, ref)
    for g_ours, g_ref in zip(grads(ours, v1, v2), grads(ref, v1, v2)):
        close(g_ours, g_ref)


def test_nt_xent_reference_formula():
    v1, v2 = randn(4, 3, seed=13), randn(4, 3, seed=14)
    z = F.normalize(torch.cat([v1, v2]), dim=1)
    s = z @ z.T / 0.2
    terms = []
    for i in range(8):
        j = (i + 4) % 8
        others = torch.stack([s[i, k] for k in range(8) if k != i])
        terms.append(-s[i, j] + torch.logsumexp(others, 0))
    close(LF.nt_xent_loss(v1, v2, temperature=0.2, reduction="none"), torch.stack(terms))


@pytest.mark.parametrize("margin_rad", [0.5, 0.2, 1.2])
def test_arcface_equals_pml(margin_rad, pml):
    x = randn(12, 4, seed=15, requires_grad=True)
    # PML: margin in degrees, W of shape (embedding_size, num_classes); losslab: radians, (C, D).
    pml_arc = pml.losses.ArcFaceLoss(5, 4, margin=math.degrees(margin_rad), scale=64).to(DT)
    centers = pml_arc.W.detach().T.clone().requires_grad_(True)
    ref = pml_arc(x, LABELS)
    ours = LF.arcface_loss(x, LABELS, centers, margin=margin_rad)
    close(ours, ref)
    g_x, g_c = grads(ours, x, centers)
    ref_x, ref_w = grads(ref, x, pml_arc.W)
    close(g_x, ref_x)
    close(g_c, ref_w.T)
    module = LN.ArcFaceLoss(5, 4, margin=margin_rad).to(DT)
    with torch.no_grad():
        module.centers.copy_(centers)
    close(module(x, LABELS), ref)


def test_arcface_fallback_branch_past_pi_minus_m():
    # An embedding opposite its class centre: theta = pi > pi - m, logit = cos(theta) - m sin(m).
    centers = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=DT)
    x = torch.tensor([[-1.0, -1e-3]], dtype=DT)
    cos_y = F.cosine_similarity(x, centers[:1]).item()
    cos_other = F.cosine_similarity(x, centers[1:]).item()
    logits = torch.tensor([[cos_y - 0.5 * math.sin(0.5), cos_other]], dtype=DT) * 64
    close(LF.arcface_loss(x, torch.tensor([0]), centers), F.cross_entropy(logits, torch.tensor([0])))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_arcface_finite_at_cos_plus_minus_one(sign):
    centers = randn(3, 4, seed=16, requires_grad=True)
    x = (sign * centers.detach()[[0, 1, 2, 0]]).clone().requires_grad_(True)
    loss = LF.arcface_loss(x, torch.tensor([0, 1, 2, 0]), centers)
    g_x, g_c = grads(loss, x, centers)
    assert torch.isfinite(loss) and torch.isfinite(g_x).all() and torch.isfinite(g_c).all()
    # value: cos(0 + m) = cos m for the aligned case, cos(pi) - m sin m = -1 - m sin m opposite
    target = math.cos(0.5) if sign > 0 else -1 - 0.5 * math.sin(0.5)
    cos = F.normalize(x.detach(), dim=1) @ F.normalize(centers.detach(), dim=1).T
    cos[torch.arange(4), torch.tensor([0, 1, 2, 0])] = target
    close(loss, F.cross_entropy(64 * cos, torch.tensor([0, 1, 2, 0])))


def test_arcface_computes_in_float32_under_autocast_and_half_input():
    x32, centers = randn(6, 4, seed=17).float(), randn(3, 4, seed=18).float()
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    ref = LF.arcface_loss(x32, labels, centers)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = LF.arcface_loss(x32, labels, centers)
    assert inside.dtype == torch.float32
    close(inside, ref, rtol=0, atol=0)
    half = LF.arcface_loss(x32.half(), labels, centers)
    assert half.dtype == torch.float32 and torch.isfinite(half)
    close(half, LF.arcface_loss(x32.half().float(), labels, centers))


# --- sentence-transformers -------------------------------------------------------------------------

# ST's losses take a model only to embed texts; the loss math runs on fixed tensors through
# compute_loss_from_embeddings, so a bare Module stands in for the model (no download).
STUB_MODEL = torch.nn.Module()


@pytest.fixture(scope="module")
def st_losses():
    """sentence-transformers' losses, imported by the tests that use them (not when the module
    is collected: the import takes several seconds)."""
    from sentence_transformers.sentence_transformer import losses

    return losses


@pytest.mark.parametrize("num_negatives", [0, 1, 2])
@pytest.mark.parametrize("scale", [20.0, 7.0])
def test_mnr_equals_sentence_transformers(num_negatives, scale, st_losses):
    a, p = randn(6, 8, seed=20, requires_grad=True), randn(6, 8, seed=21, requires_grad=True)
    negs = [randn(6, 8, seed=22 + k, requires_grad=True) for k in range(num_negatives)]
    ref = st_losses.MultipleNegativesRankingLoss(STUB_MODEL, scale=scale).compute_loss_from_embeddings([a, p, *negs], None)
    neg = None if not negs else (negs[0] if num_negatives == 1 else torch.stack(negs, 1))
    ours = LF.multiple_negatives_ranking_loss(a, p, neg, scale=scale)
    close(ours, ref)
    for g_ours, g_ref in zip(grads(ours, a, p, *negs), grads(ref, a, p, *negs)):
        close(g_ours, g_ref)


@pytest.mark.parametrize("num_negatives", [0, 1])
def test_mnr_symmetric_equals_sentence_transformers(num_negatives, st_losses):
    a, p = randn(5, 8, seed=30, requires_grad=True), randn(5, 8, seed=31, requires_grad=True)
    negs = [randn(5, 8, seed=32)] * num_negatives
    st = st_losses.MultipleNegativesRankingLoss(STUB_MODEL, directions=("query_to_doc", "doc_to_query"),
                                                partition_mode="per_direction")
    ref = st.compute_loss_from_embeddings([a, p, *negs], None)
    ours = LF.multiple_negatives_ranking_loss(a, p, negs[0] if negs else None, symmetric=True)
    close(ours, ref)
    close(grads(ours, a)[0], grads(ref, a)[0])
    close(LN.MultipleNegativesRankingLoss(symmetric=True)(a, p, negs[0] if negs else None), ref)


def test_mnr_dot_similarity_equals_sentence_transformers(st_losses):
    from sentence_transformers.util import dot_score

    a, p = randn(5, 8, seed=33), randn(5, 8, seed=34)
    ref = st_losses.MultipleNegativesRankingLoss(STUB_MODEL, scale=1.0, similarity_fct=dot_score).compute_loss_from_embeddings([a, p], None)
    close(LF.multiple_negatives_ranking_loss(a, p, scale=1.0, similarity="dot"), ref)


@pytest.mark.parametrize("margin", [0.5, 0.9])
def test_contrastive_cosine_equals_sentence_transformers(margin, st_losses):
    a, b = randn(8, 6, seed=40, requires_grad=True), randn(8, 6, seed=41, requires_grad=True)
    y = torch.tensor([1, 0, 1, 1, 0, 0, 1, 0])  # ST: 1 = similar
    ref = st_losses.ContrastiveLoss(STUB_MODEL, margin=margin).compute_loss_from_embeddings([a, b], y)
    ours = LF.contrastive_loss(a, b, y, distance="cosine", margin=margin, similar_label=1)
    close(ours, ref)
    close(grads(ours, a)[0], grads(ref, a)[0])
    # the seed's convention: the same pairs with Y = 1 - y
    close(LF.contrastive_loss(a, b, 1 - y, distance="cosine", margin=margin), ref)
    st_sum = st_losses.ContrastiveLoss(STUB_MODEL, margin=margin, size_average=False)
    close(LN.ContrastiveLoss(distance="cosine", margin=margin, similar_label=1, reduction="sum")(a, b, y),
          st_sum.compute_loss_from_embeddings([a, b], y))


def test_contrastive_hadsell_euclidean_by_hand():
    x1 = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]], dtype=DT)
    x2 = torch.tensor([[3.0, 4.0], [1.0, 1.0], [0.3, 0.4]], dtype=DT)  # D = 5, 0, 0.5
    y = torch.tensor([0, 1, 1])  # seed: 0 = similar
    expected = torch.tensor([0.5 * 25, 0.5 * 2.0**2, 0.5 * 1.5**2], dtype=DT)
    close(LF.contrastive_loss(x1, x2, y, margin=2.0, reduction="none"), expected)
    close(LF.contrastive_loss(x1, x2, y.bool(), margin=2.0), expected.mean())
    close(LF.contrastive_loss(x1, x2, y.double(), margin=2.0, squared=False, reduction="none"),
          torch.tensor([5.0, 2.0, 1.5], dtype=DT))


# --- InfoNCE ---------------------------------------------------------------------------------------


def _cos(a, b):
    return F.cosine_similarity(a, b, dim=-1)


def test_info_nce_in_batch_reference_and_mnr_identity():
    q, k = randn(5, 4, seed=50), randn(5, 4, seed=51)
    t = 0.25
    terms = []
    for i in range(5):
        logits = torch.stack([_cos(q[i], k[j]) / t for j in range(5)])
        terms.append(torch.logsumexp(logits, 0) - logits[i])
    terms = torch.stack(terms)
    close(LF.info_nce_loss(q, k, temperature=t, reduction="none"), terms)
    # in-batch InfoNCE with temperature 1/scale is MNR without hard negatives
    close(LF.info_nce_loss(q, k, temperature=1 / 20), LF.multiple_negatives_ranking_loss(q, k))
    back = torch.stack([
        torch.logsumexp(torch.stack([_cos(k[i], q[j]) / t for j in range(5)]), 0) - _cos(k[i], q[i]) / t
        for i in range(5)
    ])
    close(LF.info_nce_loss(q, k, temperature=t, symmetric=True, reduction="none"), 0.5 * (terms + back))


@pytest.mark.parametrize("mode", ["unpaired", "paired"])
def test_info_nce_explicit_negatives_reference(mode):
    q, k = randn(4, 3, seed=52), randn(4, 3, seed=53)
    negatives = randn(6, 3, seed=54) if mode == "unpaired" else randn(4, 6, 3, seed=54)
    terms = []
    for i in range(4):
        negs = negatives if mode == "unpaired" else negatives[i]
        logits = torch.cat([_cos(q[i], k[i])[None], _cos(q[i][None], negs)]) / 0.1
        terms.append(torch.logsumexp(logits, 0) - logits[0])
    close(LF.info_nce_loss(q, k, negatives, negative_mode=mode, reduction="none"), torch.stack(terms))
    close(LN.InfoNCELoss(negative_mode=mode, reduction="sum")(q, k, negatives), torch.stack(terms).sum())
    dot = LF.info_nce_loss(q, k, negatives, negative_mode=mode, similarity="dot", temperature=1.0, reduction="none")
    negs0 = negatives if mode == "unpaired" else negatives[0]
    logits0 = torch.cat([(q[0] * k[0]).sum()[None], negs0 @ q[0]])
    close(dot[0], torch.logsumexp(logits0, 0) - logits0[0])


# --- GE2E: float64 reference from Wan et al. 2018 ------------------------------------------------


def ge2e_reference(e, w, b, variant):
    """Equations (1)-(9) of Wan et al. 2018, written loop by loop."""
    n, m, _ = e.shape
    centroids = [e[k].mean(0) for k in range(n)]
    out = torch.zeros(n, m, dtype=e.dtype)
    for j in range(n):
        for i in range(m):
            s = []
            for k in range(n):
                c = (e[j].sum(0) - e[j, i]) / (m - 1) if k == j else centroids[k]  # eq. (8)
                s.append(w * _cos(e[j, i], c) + b)  # eq. (5) / (9)
            s = torch.stack(s)
            if variant == "softmax":  # eq. (6)
                out[j, i] = -s[j] + torch.log(torch.exp(s).sum())
            else:  # eq. (7)
                others = torch.stack([torch.sigmoid(s[k]) for k in range(n) if k != j])
                out[j, i] = 1 - torch.sigmoid(s[j]) + others.max()
    return out


@pytest.mark.parametrize("variant", ["softmax", "contrast"])
@pytest.mark.parametrize("w,b", [(10.0, -5.0), (2.5, 0.7)])
def test_ge2e_equals_paper_reference(variant, w, b):
    e = randn(4, 3, 5, seed=60)
    ref = ge2e_reference(e, w, b, variant)
    close(LF.ge2e_loss(e, w=w, b=b, variant=variant, reduction="none"), ref)
    close(LF.ge2e_loss(e, w=w, b=b, variant=variant), ref.mean())
    close(LF.ge2e_loss(e, w=w, b=b, variant=variant, reduction="sum"), ref.sum())


def test_ge2e_module_learns_w_and_b_and_keeps_w_positive():
    module = LN.GE2ELoss().to(DT)
    # w_raw is created in the default dtype (float32): w = 10 up to float32 rounding
    assert math.isclose(module.w.item(), 10.0, rel_tol=1e-6) and module.b.item() == -5.0
    e = randn(3, 4, 5, seed=61)
    loss = module(e)
    close(loss, ge2e_reference(e, module.w.item(), -5.0, "softmax").mean())
    loss.backward()
    assert module.w_raw.grad is not None and module.w_raw.grad.abs() > 0 and module.b.grad.abs() > 0
    # drive w hard towards negative values: it stays > 0 (a reparametrisation, not a clamp)
    optimizer = torch.optim.SGD(module.parameters(), lr=100.0)
    for _ in range(5):
        optimizer.zero_grad()
        (module.w * 1e3).backward()
        optimizer.step()
        assert module.w.item() > 0
    assert torch.isfinite(module(e))
    contrast = LN.GE2ELoss(variant="contrast", init_w=3.0, init_b=1.0).to(DT)
    close(contrast(e), ge2e_reference(e, contrast.w.item(), 1.0, "contrast").mean())


# --- numerics: zero-norm embeddings, gradcheck ----------------------------------------------------


def _zero_row(*shape, seed):
    x = randn(*shape, seed=seed)
    x.view(-1, shape[-1])[0] = 0.0
    return x.requires_grad_(True)


def test_zero_norm_embeddings_with_cosine_are_finite():
    checks = {
        "contrastive": lambda x, y: LF.contrastive_loss(x, y, torch.tensor([0, 1, 0, 1]), distance="cosine"),
        "contrastive_euclid_same": lambda x, y: LF.contrastive_loss(x, x, torch.tensor([0, 1, 0, 1])),
        "batch_hard": lambda x, y: LF.batch_triplet_loss(x, torch.tensor([0, 0, 1, 1]), distance="cosine"),
        "batch_all": lambda x, y: LF.batch_triplet_loss(x, torch.tensor([0, 0, 1, 1]), mining="all", distance="cosine"),
        "info_nce": lambda x, y: LF.info_nce_loss(x, y, symmetric=True),
        "nt_xent": lambda x, y: LF.nt_xent_loss(x, y),
        "mnr": lambda x, y: LF.multiple_negatives_ranking_loss(x, y, y.flip(0)),
        "arcface": lambda x, y: LF.arcface_loss(x, torch.tensor([0, 1, 0, 1]), y[:2]),
        "ge2e": lambda x, y: LF.ge2e_loss(x.reshape(2, 2, 3)),
        "triplet": lambda x, y: LF.triplet_margin_loss(x, x, y, eps=0.0),
    }
    for name, fn in checks.items():
        x, y = _zero_row(4, 3, seed=70), _zero_row(4, 3, seed=71)
        loss = fn(x, y)
        g = torch.autograd.grad(loss, [x, y], allow_unused=True)
        assert torch.isfinite(loss), name
        assert all(t is None or torch.isfinite(t).all() for t in g), name


def test_gradcheck_float64():
    x, y, z = (randn(4, 3, seed=s, requires_grad=True) for s in (80, 81, 82))
    labels = torch.tensor([0, 0, 1, 1])
    cases = [
        (lambda a, b: LF.contrastive_loss(a, b, torch.tensor([0, 1, 0, 1]), margin=5.0), (x, y)),
        (lambda a, b: LF.contrastive_loss(a, b, torch.tensor([0, 1, 0, 1]), distance="cosine", margin=1.5), (x, y)),
        (lambda a, b, c: LF.triplet_margin_loss(a, b, c, margin=5.0, swap=True), (x, y, z)),
        (lambda a: LF.batch_triplet_loss(a, labels, margin=5.0), (x,)),
        (lambda a: LF.batch_triplet_loss(a, labels, mining="all", margin=5.0), (x,)),
        (lambda a, b, c: LF.info_nce_loss(a, b, c, temperature=0.5), (x, y, z)),
        (lambda a, b: LF.info_nce_loss(a, b, symmetric=True, temperature=0.5), (x, y)),
        (lambda a, b: LF.nt_xent_loss(a, b, temperature=0.5), (x, y)),
        (lambda a, b, c: LF.multiple_negatives_ranking_loss(a, b, c, scale=2.0, symmetric=True), (x, y, z)),
        (lambda a, c: LF.arcface_loss(a, labels, c, scale=2.0), (x, z[:2].detach().clone().requires_grad_(True))),
        (lambda a: LF.ge2e_loss(a.reshape(2, 2, 3), w=2.0, b=0.5), (x,)),
        (lambda a: LF.ge2e_loss(a.reshape(2, 2, 3), w=2.0, b=0.5, variant="contrast"), (x,)),
    ]
    for fn, inputs in cases:
        assert torch.autograd.gradcheck(fn, inputs)
    w = torch.tensor(3.0, dtype=DT, requires_grad=True)
    b = torch.tensor(-1.0, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda w_, b_: LF.ge2e_loss(x.detach().reshape(2, 2, 3), w=w_, b=b_), (w, b))


def test_half_precision_inputs_compute_in_float32():
    x, y = randn(6, 4, seed=90).half(), randn(6, 4, seed=91).half()
    for loss in (
        LF.info_nce_loss(x, y), LF.nt_xent_loss(x, y), LF.multiple_negatives_ranking_loss(x, y),
        LF.batch_triplet_loss(x, torch.tensor([0, 0, 1, 1, 2, 2])), LF.ge2e_loss(x.reshape(3, 2, 4)),
    ):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)


# --- registry and modules --------------------------------------------------------------------------


def test_registry_entries():
    expected = ["contrastive", "triplet_margin", "batch_hard_triplet", "batch_all_triplet", "info_nce",
                "nt_xent", "multiple_negatives_ranking", "arcface", "ge2e"]
    assert loss_names("embedding") == expected
    assert get_info("mnr").name == "multiple_negatives_ranking"
    assert get_info("triplet").name == "triplet_margin"
    assert get_info("arcface").hyperparameters["num_classes"] == "required"
    x, labels = randn(8, 4, seed=95), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    close(get_loss("batch_hard_triplet")(x, labels), LF.batch_triplet_loss(x, labels))
    close(get_loss("batch_all_triplet")(x, labels), LF.batch_triplet_loss(x, labels, mining="all"))
    arc = get_loss("arcface", num_classes=4, embedding_dim=4).to(DT)
    close(arc(x, labels), LF.arcface_loss(x, labels, arc.centers))
    assert arc.centers.shape == (4, 4) and arc.centers.requires_grad
    with pytest.raises(TypeError, match="arcface: .*num_classes"):
        get_loss("arcface")
    close(get_loss("ge2e", variant="contrast")(x.reshape(4, 2, 4)).to(DT),
          LF.ge2e_loss(x.reshape(4, 2, 4), variant="contrast"), rtol=0, atol=1e-5)
    close(get_loss("nt_xent", temperature=0.3)(x, x.flip(0)), LF.nt_xent_loss(x, x.flip(0), temperature=0.3))


# --- bad input -------------------------------------------------------------------------------------

X, Y, Z = randn(4, 3, seed=1), randn(4, 3, seed=2), randn(4, 3, seed=3)
L4 = torch.tensor([0, 0, 1, 1])

BAD = [
    # contrastive
    (lambda: LF.contrastive_loss(X, Y[:3], L4), ValueError, r"input2: expected the same shape as input1 \(4, 3\), got \(3, 3\)"),
    (lambda: LF.contrastive_loss(X, Y, L4[:3]), ValueError, r"target: expected one label per pair, shape \(4,\), got \(3,\)"),
    (lambda: LF.contrastive_loss(X, Y, torch.tensor([0, 2, 1, 0])), ValueError, r"target: expected pair labels 0 or 1, got 2"),
    (lambda: LF.contrastive_loss(X, Y, L4, similar_label=2), ValueError, r"similar_label: expected 0 .* or 1, got 2"),
    (lambda: LF.contrastive_loss(X, Y, L4, distance="dot"), ValueError, r"distance: expected one of 'euclidean', 'cosine', got 'dot'"),
    (lambda: LF.contrastive_loss(X, Y, L4, margin=0), ValueError, r"margin: expected a finite number > 0, got 0"),
    (lambda: LF.contrastive_loss(X.long(), Y, L4), TypeError, r"input1: expected a floating-point tensor"),
    (lambda: LF.contrastive_loss(X, Y, L4, reduction="avg"), ValueError, r"reduction: expected one of .*got 'avg'"),
    # triplet
    (lambda: LF.triplet_margin_loss(X, Y, Z[:2]), ValueError, r"negative: expected the same shape as anchor \(4, 3\), got \(2, 3\)"),
    (lambda: LF.triplet_margin_loss(X[None], Y[None], Z[None]), ValueError, r"anchor: expected embeddings of shape \(N, D\) or \(D,\), got \(1, 4, 3\)"),
    (lambda: LF.triplet_margin_loss(X, Y, Z, p=0), ValueError, r"p: expected a number > 0 \(or inf\), got 0"),
    (lambda: LF.triplet_margin_loss(X, Y, Z, margin=-1), ValueError, r"margin: expected a finite number >= 0, got -1"),
    (lambda: LF.triplet_margin_loss(X, Y, Z, swap=1), TypeError, r"swap: expected a bool \(True or False\), got 1"),
    (lambda: LF.triplet_margin_loss(X, Y, Z, reduction="batchmean"), ValueError, r"reduction: expected one of"),
    # batch triplet
    (lambda: LF.batch_triplet_loss(X, L4[:3]), ValueError, r"labels: expected one label per embedding, shape \(4,\), got \(3,\)"),
    (lambda: LF.batch_triplet_loss(X, L4.double()), TypeError, r"labels: expected an integer tensor of class indices .*, got dtype torch.float64"),
    (lambda: LF.batch_triplet_loss(X, L4, mining="semihard"), ValueError, r"mining: expected one of 'hard', 'all', got 'semihard'"),
    (lambda: LF.batch_triplet_loss(X, L4, average="some"), ValueError, r"average: expected one of 'nonzero', 'all', got 'some'"),
    (lambda: LF.batch_triplet_loss(X[0], L4), ValueError, r"embeddings: expected a 2-D tensor of embeddings \(N, D\), got shape \(3,\)"),
    (lambda: LF.batch_triplet_loss(X, L4, distance="dot"), ValueError, r"distance: expected one of"),
    (lambda: LF.batch_triplet_loss(X, L4, reduction="x"), ValueError, r"reduction: expected one of"),
    # InfoNCE
    (lambda: LF.info_nce_loss(X, Y[:3]), ValueError, r"positive_key: expected the same shape as query \(4, 3\), got \(3, 3\)"),
    (lambda: LF.info_nce_loss(X, Y, torch.randn(4, 2, 3, dtype=DT)), ValueError, r"negative_keys: expected shape \(M, 3\) for negative_mode='unpaired', got \(4, 2, 3\)"),
    (lambda: LF.info_nce_loss(X, Y, Z, negative_mode="paired"), ValueError, r"negative_keys: expected shape \(4, M, 3\) for negative_mode='paired', got \(4, 3\)"),
    (lambda: LF.info_nce_loss(X, Y, Z, symmetric=True), ValueError, r"symmetric: expected False when negative_keys are given"),
    (lambda: LF.info_nce_loss(X, Y, temperature=0.0), ValueError, r"temperature: expected a finite number > 0, got 0.0"),
    (lambda: LF.info_nce_loss(X, Y, similarity="euclidean"), ValueError, r"similarity: expected one of 'cosine', 'dot', got 'euclidean'"),
    (lambda: LF.info_nce_loss(X, Y, reduction="x"), ValueError, r"reduction: expected one of"),
    (lambda: LF.info_nce_loss(X, Y, gather_across_ranks="yes"), TypeError, r"gather_across_ranks: expected a bool \(True or False\), got 'yes'"),
    # NT-Xent
    (lambda: LF.nt_xent_loss(X, Y[:, :2]), ValueError, r"view2: expected the same shape as view1 \(4, 3\), got \(4, 2\)"),
    (lambda: LF.nt_xent_loss(X, Y, temperature=-1.0), ValueError, r"temperature: expected a finite number > 0"),
    (lambda: LF.nt_xent_loss(X.int(), Y), TypeError, r"view1: expected a floating-point tensor"),
    (lambda: LF.nt_xent_loss(X, Y, reduction="x"), ValueError, r"reduction: expected one of"),
    # MNR
    (lambda: LF.multiple_negatives_ranking_loss(X, Y, Z[:3]), ValueError, r"negatives: expected shape \(4, 3\) or \(4, K, 3\), got \(3, 1, 3\)"),
    (lambda: LF.multiple_negatives_ranking_loss(X, Y, scale=0), ValueError, r"scale: expected a finite number > 0, got 0"),
    (lambda: LF.multiple_negatives_ranking_loss(X, Y[:2]), ValueError, r"positives: expected the same shape as anchors"),
    (lambda: LF.multiple_negatives_ranking_loss(X, Y, reduction="x"), ValueError, r"reduction: expected one of"),
    # ArcFace
    (lambda: LF.arcface_loss(X, L4, Z[:2, :2]), ValueError, r"centers: expected a class-centre matrix of shape \(C, 3\), got \(2, 2\)"),
    (lambda: LF.arcface_loss(X, torch.tensor([0, 1, 2, 0]), Z[:2]), ValueError, r"labels: expected class indices in \[0, 1\], got 2"),
    (lambda: LF.arcface_loss(X, L4, Z[:2], margin=4.0), ValueError, r"margin: expected an angle in radians in \[0, pi\), got 4.0"),
    (lambda: LF.arcface_loss(X, L4, Z[:2], margin=math.pi), ValueError, r"margin: expected an angle in radians in \[0, pi\), got 3.14159"),
    (lambda: LF.arcface_loss(X, L4, Z[:2], scale=-1), ValueError, r"scale: expected a finite number > 0"),
    (lambda: LF.arcface_loss(X, L4, Z[:2], reduction="x"), ValueError, r"reduction: expected one of"),
    (lambda: LN.ArcFaceLoss(0, 3), ValueError, r"num_classes: expected a positive integer, got 0"),
    (lambda: LN.ArcFaceLoss(2, 3, margin=-0.1), ValueError, r"margin: expected an angle in radians in \[0, pi\), got -0.1"),
    # GE2E
    (lambda: LF.ge2e_loss(X), ValueError, r"embeddings: expected a 3-D tensor \(speakers, utterances, dim\), got shape \(4, 3\)"),
    (lambda: LF.ge2e_loss(X[:, None, :]), ValueError, r"embeddings: expected at least 2 utterances per speaker"),
    (lambda: LF.ge2e_loss(X.reshape(1, 4, 3)), ValueError, r"embeddings: expected at least 2 speakers in total"),
    (lambda: LF.ge2e_loss(X.reshape(2, 2, 3), w=0.0), ValueError, r"w: expected a finite number > 0, got 0.0"),
    (lambda: LF.ge2e_loss(X.reshape(2, 2, 3), w=torch.tensor(-1.0)), ValueError, r"w: expected a value > 0, got -1.0"),
    (lambda: LF.ge2e_loss(X.reshape(2, 2, 3), b=torch.ones(2)), ValueError, r"b: expected a number or a one-element floating tensor"),
    (lambda: LF.ge2e_loss(X.reshape(2, 2, 3), variant="triplet"), ValueError, r"variant: expected one of 'softmax', 'contrast', got 'triplet'"),
    (lambda: LF.ge2e_loss(X.reshape(2, 2, 3), reduction="x"), ValueError, r"reduction: expected one of"),
    (lambda: LN.GE2ELoss(init_w=-1.0), ValueError, r"init_w: expected a number > min_w=1e-06, got -1.0"),
    (lambda: LN.GE2ELoss(variant="x"), ValueError, r"variant: expected one of"),
]


@pytest.mark.parametrize("call,error,message", BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_raises_with_message(call, error, message):
    with pytest.raises(error, match=message):
        call()

"""HungarianMatcher: optimal assignment (against brute force) and cost definitions."""

import itertools

import pytest
import torch
import torch.nn.functional as F

from pmp_ros.model.matcher import HungarianMatcher, pairwise_dice, pairwise_sigmoid_ce


def random_case(b=2, q=5, c=3, sizes=(3, 5), h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    outputs = {
        "pred_logits": torch.randn(b, q, c + 1, generator=g),
        "pred_masks": torch.randn(b, q, h, w, generator=g) * 3,
    }
    targets = [
        {"labels": torch.randint(0, c, (n,), generator=g), "masks": torch.rand(n, 2 * h, 2 * w, generator=g) > 0.5}
        for n in sizes
    ]
    return outputs, targets


def brute_force_min(cost):
    """Smallest total cost over all injective maps targets -> queries ([Q,N], N <= Q)."""
    q, n = cost.shape
    return min(sum(cost[p[j], j].item() for j in range(n)) for p in itertools.permutations(range(q), n))


@pytest.mark.parametrize("seed", range(4))
def test_assignment_is_optimal(seed):
    outputs, targets = random_case(seed=seed)
    matcher = HungarianMatcher(cost_class=2.0, cost_mask=5.0, cost_dice=5.0, num_points=64)
    torch.manual_seed(seed)
    costs = matcher.cost_matrices(outputs, targets)
    torch.manual_seed(seed)  # same sampled points, so forward sees the same costs
    indices = matcher(outputs, targets)
    for cost, (pred_idx, tgt_idx), target in zip(costs, indices, targets):
        assert pred_idx.dtype == tgt_idx.dtype == torch.int64
        assert len(pred_idx) == len(target["labels"])
        assert len(set(pred_idx.tolist())) == len(pred_idx)
        assert sorted(tgt_idx.tolist()) == list(range(len(target["labels"])))
        total = cost[pred_idx, tgt_idx].sum().item()
        assert total == pytest.approx(brute_force_min(cost), abs=1e-5)


def test_recovers_a_permutation_whatever_the_points():
    _, targets = random_case(b=1, q=4, sizes=(4,), seed=3)
    perm = torch.tensor([2, 0, 3, 1])  # query i predicts target perm[i]
    masks = targets[0]["masks"][perm].float()
    outputs = {
        "pred_logits": F.one_hot(targets[0]["labels"][perm], 4)[None].float() * 10,
        "pred_masks": (F.avg_pool2d(masks, 2)[None] * 2 - 1) * 20,  # confident logits at half resolution
    }
    pred_idx, tgt_idx = HungarianMatcher(num_points=256)(outputs, targets)[0]
    assert perm[pred_idx].tolist() == tgt_idx.tolist()


def test_empty_targets():
    outputs, targets = random_case(sizes=(0, 2))
    indices = HungarianMatcher(num_points=16)(outputs, targets)
    assert len(indices[0][0]) == len(indices[0][1]) == 0
    assert len(indices[1][0]) == 2


def test_pairwise_costs_match_elementwise_losses():
    logits, targets = torch.randn(3, 20), (torch.rand(4, 20) > 0.5).float()
    ce, dice = pairwise_sigmoid_ce(logits, targets), pairwise_dice(logits, targets)
    for i in range(3):
        for j in range(4):
            expected_ce = F.binary_cross_entropy_with_logits(logits[i], targets[j])
            p = logits[i].sigmoid()
            expected_dice = 1 - (2 * (p * targets[j]).sum() + 1) / (p.sum() + targets[j].sum() + 1)
            torch.testing.assert_close(ce[i, j], expected_ce)
            torch.testing.assert_close(dice[i, j], expected_dice)

"""SetCriterion and point sampling: finite losses, deep supervision, gradients, void weighting."""

import pytest
import torch
import torch.nn.functional as F

from pmp_ros.model.config import LossConfig
from pmp_ros.model.criterion import SetCriterion
from pmp_ros.model.point_sampling import point_sample, sample_uncertain_points

NUM_POINTS = 64


def make_outputs(b=2, q=6, c=3, h=8, w=12, num_aux=2):
    def one():
        return {
            "pred_logits": torch.randn(b, q, c + 1, requires_grad=True),
            "pred_masks": torch.randn(b, q, h, w, requires_grad=True),
        }

    outputs = one()
    outputs["aux_outputs"] = [one() for _ in range(num_aux)]
    return outputs


def make_targets(sizes=(2, 3), c=3, h=32, w=48):
    return [{"labels": torch.randint(0, c, (n,)), "masks": torch.rand(n, h, w) > 0.5} for n in sizes]


def criterion(**overrides):
    cfg = LossConfig(num_points=NUM_POINTS, **overrides)
    return SetCriterion.from_config(cfg, num_classes=None)


def test_losses_finite_with_deep_supervision_and_gradients():
    torch.manual_seed(0)
    outputs, crit = make_outputs(), criterion()
    losses = crit(outputs, make_targets())
    base = {"loss_ce", "loss_mask", "loss_dice"}
    assert set(losses) == base | {f"{k}_{i}" for k in base for i in range(2)}
    assert all(torch.isfinite(v) for v in losses.values())
    crit.weighted_total(losses).backward()
    for out in [outputs, *outputs["aux_outputs"]]:
        assert out["pred_logits"].grad.abs().sum() > 0
        assert out["pred_masks"].grad.abs().sum() > 0


def test_weighted_total_uses_base_weights():
    crit = criterion(class_weight=2.0, mask_weight=5.0, dice_weight=3.0)
    losses = {"loss_ce": torch.tensor(1.0), "loss_ce_4": torch.tensor(1.0), "loss_dice_0": torch.tensor(2.0)}
    assert crit.weighted_total(losses).item() == pytest.approx(2 + 2 + 6)


def test_deep_supervision_off_ignores_aux():
    losses = criterion(deep_supervision=False)(make_outputs(), make_targets())
    assert set(losses) == {"loss_ce", "loss_mask", "loss_dice"}


def test_no_targets_trains_every_query_towards_void():
    torch.manual_seed(0)
    outputs = make_outputs(num_aux=0)
    losses = criterion()(outputs, make_targets(sizes=(0, 0)))
    logits = outputs["pred_logits"].detach()
    expected = F.cross_entropy(logits.flatten(0, 1), torch.full((logits.shape[0] * logits.shape[1],), 3))
    torch.testing.assert_close(losses["loss_ce"], expected)
    assert losses["loss_mask"].item() == 0 and losses["loss_mask"].requires_grad


def test_correct_predictions_cost_less_than_random():
    torch.manual_seed(0)
    masks = torch.zeros(3, 16, 24)
    masks[0, :8, :12] = masks[1, 4:, 12:] = masks[2, 10:14, 2:20] = 1  # blobs: few pixels on a boundary
    targets = [{"labels": torch.tensor([2, 0, 1]), "masks": masks.bool()}]
    good = {
        "pred_logits": torch.cat([F.one_hot(targets[0]["labels"], 4) * 8.0, torch.tensor([[0, 0, 0, 8.0]] * 3)])[None],
        "pred_masks": torch.cat([(masks * 2 - 1) * 8, torch.zeros(3, 16, 24)])[None],
    }
    random = {"pred_logits": torch.randn(1, 6, 4), "pred_masks": torch.randn(1, 6, 16, 24)}
    crit = criterion(deep_supervision=False)
    # Not near 0: importance sampling puts most points on the (interpolated, uncertain) mask boundaries.
    assert crit.weighted_total(crit(good, targets)) < 0.5 * crit.weighted_total(crit(random, targets))


def test_class_count_is_checked():
    crit = SetCriterion.from_config(LossConfig(num_points=NUM_POINTS), num_classes=5)
    with pytest.raises(ValueError, match="criterion expects 5"):
        crit(make_outputs(c=3), make_targets())


def test_point_sample_reads_pixel_centres():
    maps = torch.arange(12.0).reshape(1, 1, 3, 4)
    coords = torch.tensor([[[0.5 / 4, 0.5 / 3], [3.5 / 4, 2.5 / 3]]])  # centres of pixels (0,0) and (2,3)
    torch.testing.assert_close(point_sample(maps, coords), torch.tensor([[[0.0, 11.0]]]))


def test_uncertain_points_prefer_the_boundary():
    torch.manual_seed(0)
    logits = torch.full((2, 1, 32, 32), 10.0)
    logits[:, :, :, 16:] = -10.0
    logits[:, :, :, 15:17] = 0.0  # uncertain band: 1/16 of the image
    coords = sample_uncertain_points(logits, 100, oversample_ratio=3, importance_sample_ratio=0.75)
    assert coords.shape == (2, 100, 2) and coords.min() >= 0 and coords.max() <= 1
    in_band = ((coords[..., 0] > 14 / 32) & (coords[..., 0] < 18 / 32)).float().mean()
    assert in_band > 0.15  # uniform sampling would give ~0.125 for this wider window


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_autocast_with_cpu_targets():
    torch.manual_seed(0)
    outputs = {k: v.cuda() if torch.is_tensor(v) else v for k, v in make_outputs(num_aux=0).items()}
    with torch.autocast("cuda", dtype=torch.bfloat16):
        losses = criterion()(outputs, make_targets())  # targets stay on the CPU, as a data loader gives them
    assert all(torch.isfinite(v) and v.device.type == "cuda" for v in losses.values())


def test_unit_or_uniform_target_weights_leave_the_loss_unchanged():
    """Weights 1 are Mask2Former's loss; uniform weights leave the mask losses (normalised by the summed
    weights) unchanged, while the class loss shifts towards "no object" (its eos_coef weight stays)."""
    outputs, targets = make_outputs(), make_targets()
    torch.manual_seed(1)
    plain = criterion()(outputs, targets)
    for value in (1.0, 0.5):
        weighted = [{**t, "weights": torch.full((len(t["labels"]),), value)} for t in targets]
        torch.manual_seed(1)
        losses = criterion()(outputs, weighted)
        for name in plain:
            if value == 1.0 or not name.startswith("loss_ce"):
                torch.testing.assert_close(losses[name], plain[name])


def test_a_zero_weight_target_trains_neither_its_mask_nor_its_class():
    torch.manual_seed(0)
    outputs = make_outputs(b=1, q=6, num_aux=0)
    targets = make_targets(sizes=(2,))
    targets[0]["weights"] = torch.tensor([1.0, 0.0])
    crit = criterion()
    crit.weighted_total(crit(outputs, targets)).backward()
    mask_grads = outputs["pred_masks"].grad[0].flatten(1).abs().sum(1)
    class_grads = outputs["pred_logits"].grad[0].abs().sum(1)
    assert int((mask_grads > 0).sum()) == 1  # only the query matched to the weighted target
    assert int((class_grads > 0).sum()) == 5  # every query but the one matched to the zero-weight target


def test_class_weights_replace_the_weights_in_the_class_loss_only():
    """A target of weight 0 with class weight 1 trains its query's class but not its mask."""
    torch.manual_seed(0)
    outputs = make_outputs(b=1, q=6, num_aux=0)
    targets = make_targets(sizes=(2,))
    targets[0]["weights"] = torch.tensor([1.0, 0.0])
    targets[0]["class_weights"] = torch.tensor([1.0, 1.0])
    crit = criterion()
    crit.weighted_total(crit(outputs, targets)).backward()
    mask_grads = outputs["pred_masks"].grad[0].flatten(1).abs().sum(1)
    class_grads = outputs["pred_logits"].grad[0].abs().sum(1)
    assert int((mask_grads > 0).sum()) == 1
    assert int((class_grads > 0).sum()) == 6  # the zero-weight target's query is trained to its class

    # Class weights equal to the weights are the weights' loss.
    plain_targets = make_targets()
    with_weights = [{**t, "weights": torch.full((len(t["labels"]),), 0.5)} for t in plain_targets]
    both = [{**t, "class_weights": t["weights"].clone()} for t in with_weights]
    outputs = make_outputs()
    torch.manual_seed(1)
    expected = criterion()(outputs, with_weights)
    torch.manual_seed(1)
    losses = criterion()(outputs, both)
    for name in expected:
        torch.testing.assert_close(losses[name], expected[name])

"""The export-friendly forms the ONNX graph runs instead of code that does not trace, against the originals,
and the choice of ONNX Runtime execution providers. Fast: nothing is exported here."""

import pytest
import torch
import torch.nn.functional as F

from pmp_ros.deploy.graph import synonym_membership
from pmp_ros.deploy.runtime import execution_providers
from pmp_ros.model.classifier import classification_logits, crop_images, crop_images_by_resampling


def _square_boxes(centres: torch.Tensor, sides: torch.Tensor) -> torch.Tensor:
    return torch.cat([centres - sides / 2, centres + sides / 2], dim=-1)


def test_resampled_crops_equal_sliced_crops_inside_outside_and_shrunk():
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 96, generator=generator)
    # Centres up to 20 px outside the image, sides from below the crop size (native scale) to 5x (shrunk,
    # with non-integer ratios), as mask_crop_boxes makes them.
    centres = torch.rand(2, 40, 2, generator=generator) * torch.tensor([136.0, 104.0]) - 20
    sides = torch.rand(2, 40, 1, generator=generator) * 64 + 16
    boxes = _square_boxes(centres, sides)
    expected = crop_images(images, boxes, 16)
    assert torch.allclose(crop_images_by_resampling(images, boxes, 16), expected, atol=1e-5)


def test_resampled_crops_equal_sliced_crops_enlarged():
    """Zoomed windows (ensemble.crop_zoom) smaller than the crop are enlarged alike by both forms."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(1, 3, 64, 96, generator=generator)
    centres = torch.rand(1, 40, 2, generator=generator) * torch.tensor([136.0, 104.0]) - 20
    sides = torch.rand(1, 40, 1, generator=generator) * 12 + 4  # 4 to 16 px -> 16 px crops
    boxes = _square_boxes(centres, sides)
    assert torch.allclose(crop_images_by_resampling(images, boxes, 16), crop_images(images, boxes, 16), atol=1e-5)


def test_a_native_scale_resampled_crop_is_an_exact_copy():
    images = torch.rand(1, 3, 40, 50)
    boxes = torch.tensor([[[5.0, 7.0, 21.0, 23.0]]])
    assert torch.equal(crop_images_by_resampling(images, boxes, 16)[0], images[0, :, 7:23, 5:21])


def test_synonym_membership_marks_each_class_rows():
    assert synonym_membership((1, 3, 2)).int().tolist() == [
        [1, 0, 0, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 1],
    ]


def test_membership_tensor_gives_the_same_logits_as_synonym_counts():
    generator = torch.Generator().manual_seed(1)
    num_templates = (2, 1, 3)
    classifier = F.normalize(torch.randn(sum(num_templates) + 1, 8, generator=generator), dim=-1)
    x, scale = torch.randn(2, 5, 8, generator=generator), torch.tensor(2.0)
    by_counts = classification_logits(x, classifier, scale, num_templates)
    by_membership = classification_logits(x, classifier, scale, synonym_membership(num_templates))
    assert by_membership.shape == (2, 5, len(num_templates) + 1)
    assert torch.allclose(by_membership, by_counts)


CPU = [("CPUExecutionProvider", {})]


def test_cpu_build_and_cpu_device_use_the_cpu_provider():
    assert execution_providers("auto", ["AzureExecutionProvider", "CPUExecutionProvider"]) == CPU
    gpu_build = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cpu", gpu_build) == CPU


def test_gpu_build_prefers_tensorrt_then_cuda_on_the_asked_gpu():
    gpu_build = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    providers = execution_providers("cuda:1", gpu_build, engine_cache="/tmp/engines")
    assert [name for name, _ in providers] == [
        "TensorrtExecutionProvider",
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]
    assert providers[0][1] == {"device_id": 1, "trt_engine_cache_enable": True, "trt_engine_cache_path": "/tmp/engines"}
    assert providers[1][1] == {"device_id": 1}
    assert [name for name, _ in execution_providers("auto", gpu_build[:2])] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_cuda_device_without_a_gpu_provider_is_refused():
    with pytest.raises(ValueError, match="onnxruntime-gpu"):
        execution_providers("cuda", ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        execution_providers("tpu", ["CPUExecutionProvider"])

"""ship_model: copies weights unchanged and replaces only settings that need no training."""

import pytest
import torch

from pmp_ros.model.segmenter import load_segmenter
from pmp_ros.train.ship_model import main

from model_fixtures import write_small_checkpoint


def test_shipped_copy_has_the_new_settings_and_the_same_weights(tmp_path):
    source = write_small_checkpoint(tmp_path / "run.safetensors")
    target = tmp_path / "shipped.safetensors"
    main(
        [
            str(source),
            str(target),
            "--set",
            "inference.score_threshold=0.25",
            "ensemble.out_vocabulary=crop",
            "ensemble.alpha=0.7",
        ]
    )
    original, _ = load_segmenter(source)
    shipped, cfg = load_segmenter(target)
    assert cfg.inference.score_threshold == 0.25 and cfg.ensemble.out_vocabulary == "crop"
    assert cfg.ensemble.alpha == 0.7 and shipped.cfg.ensemble.alpha == 0.7
    for (name, a), (_, b) in zip(original.state_dict().items(), shipped.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("setting", ["decoder.hidden_dim=32", "inference.no_such_key=1", "inference.score_threshold"])
def test_settings_that_need_training_or_do_not_exist_are_refused(tmp_path, setting):
    source = write_small_checkpoint(tmp_path / "run.safetensors")
    with pytest.raises(SystemExit):
        main([str(source), str(tmp_path / "out.safetensors"), "--set", setting])

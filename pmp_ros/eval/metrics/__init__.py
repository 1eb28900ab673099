"""Metrics, apart from the experiments that use them: instruction following per frame (frame_metrics),
semantic segmentation (semantic), proposal recall (proposals), tracking (track_metrics), 3D measurement
errors (errors3d) and the paired bootstrap (bootstrap). Pure numpy (motmetrics for tracking); shared by
pmp-eval, its subcommands, pmp-eval-bag and the demo."""

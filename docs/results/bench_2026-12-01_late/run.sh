#!/bin/bash
# Quiet-machine benchmarks of 2026-12-01 late evening (issue 18 executor, issue 17 ONNX). Training paused.
set -x
OUT=/work/main/runs/bench_quiet
cd /tmp/wt_head   # committed HEAD (the shared tree has work in progress)
export PYTHONPATH=/tmp/wt_head
/work/main/.venv/bin/python bench/bench_node.py --modes lockstep,load,idle --frames 100 --load-duration 30 --no-tracking \
    --json $OUT/node_single.json > $OUT/node_single.txt 2>&1
(cd /tmp/wt_old && PYTHONPATH=/tmp/wt_old /work/main/.venv/bin/python bench/bench_node.py --modes lockstep,load,idle \
    --frames 100 --load-duration 30 --no-tracking --json $OUT/node_multi.json > $OUT/node_multi.txt 2>&1)
/work/main/.venv/bin/python bench/bench_node.py --modes lockstep,load --frames 100 --load-duration 30 \
    --json $OUT/node_tracking.json > $OUT/node_tracking.txt 2>&1
/work/main/.venv/bin/python bench/bench_node.py --modes lockstep,load --frames 100 --load-duration 30 --no-tracking --threads 1 \
    --json $OUT/node_single_t1.json > $OUT/node_single_t1.txt 2>&1
/work/main/.venv/bin/python bench/bench_onnx.py --profile --json $OUT/onnx.json > $OUT/onnx.txt 2>&1
/work/main/.venv/bin/python bench/profile_node.py --gil --duration 20 --json $OUT/gil_single.json > $OUT/gil_single.txt 2>&1
(cd /tmp/wt_old && PYTHONPATH=/tmp/wt_old /work/main/.venv/bin/python bench/profile_node.py --gil --duration 20 \
    --json $OUT/gil_multi.json > $OUT/gil_multi.txt 2>&1)
/work/main/.venv/bin/python bench/bench_cameras.py --cameras 1 2 4 --duration 20 --json $OUT/cameras.json > $OUT/cameras.txt 2>&1
echo done > $OUT/DONE

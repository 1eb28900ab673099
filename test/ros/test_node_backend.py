"""The node's onnxruntime backend over DDS: the same frame and instruction give the same instances as the
torch backend; a missing graph is one startup line. (Numerical parity of the graph: test/deploy.)"""

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import String

from pmp_ros.deploy.export import export_onnx
from pmp_ros.ros import interface, qos
from pmp_ros.ros.image_conversion import array_to_image, image_to_array
from pmp_ros.ros.node import READY_TEXT
from pmp_ros_msgs.msg import SegmentationResult

from ros_harness import NodeProcess, node_argv, wait_until

INSTRUCTION = "pick up every red star and the green ring"
FRAME = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)


def _argv(model, **params):
    settings = {"model_path": model, "device": "cpu", "cpu_threads": 1, "score_threshold": 0.0, **params}
    return node_argv(settings, "-r", f"__ns:=/{params.get('backend', 'torch')}")


def _result(ros_client, namespace, argv):
    results = ros_client.subscribe(SegmentationResult, f"/{namespace}/{interface.SEGMENTATION_TOPIC}")
    with NodeProcess(argv, name=f"node_{namespace}") as proc:
        proc.wait_for_output(READY_TEXT, 180)
        ros_client.publisher(String, f"/{namespace}/{interface.INSTRUCTION_TOPIC}", qos.INSTRUCTION).publish(
            String(data=INSTRUCTION)
        )
        image_pub = ros_client.publisher(Image, f"/{namespace}/{interface.IMAGE_TOPIC}")

        def answered():
            image_pub.publish(array_to_image(FRAME, "rgb8"))
            return [m for m in results if m.instruction == INSTRUCTION]

        found = wait_until(answered, 120, interval=0.5, what=f"a result from the {namespace} backend")[0]
        output = proc.output()
        proc.stop()
    assert f"backend {namespace}" in output
    return found


def test_onnxruntime_backend_gives_the_torch_backends_instances(ros_client, tmp_path):
    from model_fixtures import write_small_checkpoint

    model = write_small_checkpoint(tmp_path / "tiny.safetensors")
    export_onnx(model, tmp_path / "tiny.onnx")  # the default onnx_path: the model's path with .onnx
    torch_result = _result(ros_client, "torch", _argv(model, backend="torch"))
    onnx_result = _result(ros_client, "onnxruntime", _argv(model, backend="onnxruntime"))
    assert [(i.id, i.label) for i in onnx_result.instances] == [(i.id, i.label) for i in torch_result.instances]
    assert np.allclose([i.score for i in onnx_result.instances], [i.score for i in torch_result.instances], atol=1e-3)
    torch_label, onnx_label = image_to_array(torch_result.label_image), image_to_array(onnx_result.label_image)
    assert (torch_label == onnx_label).mean() >= 0.99


def test_missing_graph_is_one_startup_line(tmp_path):
    from model_fixtures import write_small_checkpoint

    model = write_small_checkpoint(tmp_path / "tiny.safetensors")
    with NodeProcess(_argv(model, backend="onnxruntime"), name="no_graph") as proc:
        wait_until(lambda: proc.returncode is not None, 120, what="the node to exit")
        lines = [line for line in proc.output().splitlines() if line.strip()]
    assert proc.returncode == 1 and len(lines) == 1, lines
    assert "ONNX graph not found" in lines[0] and "pmp-export-onnx" in lines[0]

"""The launch file and parameter file agree with the node.

launch_ros cannot be installed on machines without a ROS distribution, so most checks read the launch
file as source (compile, AST). test_launch_starts_the_node really launches it and runs only where
launch_ros imports (a ROS 2 install); elsewhere it is skipped with that reason.
"""

import ast
import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from pmp_ros.ros import interface

REPO = Path(__file__).resolve().parents[2]
LAUNCH_FILE = REPO / "launch" / "pmp.launch.py"
PARAMS_FILE = REPO / "config" / "pmp.yaml"
FCCLIP_PRESET = REPO / "config" / "fcclip.yaml"


def _launch_ast() -> ast.Module:
    source = LAUNCH_FILE.read_text()
    compile(source, str(LAUNCH_FILE), "exec")
    return ast.parse(source)


def _module_constants(tree: ast.Module) -> dict:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Constant)
    }


def _node_parameters(*params_files: Path) -> dict:
    """The parameter values a SegmenterNode takes from these --params-file files, in order (it declares and
    validates them; the model loads later, at configure)."""
    import rclpy

    from pmp_ros.ros.node import SegmenterNode

    rclpy.init(args=["--ros-args", *[x for path in params_files for x in ("--params-file", str(path))]])
    try:
        node = SegmenterNode()
        try:
            return dict(node.params)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown()


def test_launch_file_defines_generate_launch_description():
    functions = [n.name for n in _launch_ast().body if isinstance(n, ast.FunctionDef)]
    assert "generate_launch_description" in functions


def test_launch_file_names_the_real_executable_and_node():
    constants = _module_constants(_launch_ast())
    setup_py = (REPO / "setup.py").read_text()
    scripts = dict(re.findall(r'"(\w+) = (pmp_ros[\w.]+:\w+)"', setup_py))
    assert constants["EXECUTABLE"] in scripts, f"{constants['EXECUTABLE']} is not a console script of setup.py"
    module, function = scripts[constants["EXECUTABLE"]].split(":")
    spec = importlib.util.find_spec(module)
    assert spec is not None, f"{module} does not exist"
    assert f"def {function}(" in Path(spec.origin).read_text()
    assert constants["PACKAGE"] == "pmp_ros"
    assert constants["NODE_NAME"] == interface.NODE_NAME


def test_launch_remaps_the_node_topics():
    source = LAUNCH_FILE.read_text()
    for topic in (
        interface.IMAGE_TOPIC,
        interface.INSTRUCTION_TOPIC,
        interface.STRUCTURED_INSTRUCTION_TOPIC,
        interface.DEPTH_TOPIC,
        interface.DEPTH_INFO_TOPIC,
    ):
        assert f'("{topic}", LaunchConfiguration(' in source, topic


def test_launch_has_a_managed_mode_that_turns_autostart_off():
    source = LAUNCH_FILE.read_text()
    assert 'DeclareLaunchArgument(\n            "managed"' in source
    assert '"autostart": PythonExpression(["\'", LaunchConfiguration("managed"), "\'.lower() != \'true\'"])' in source
    assert interface.PARAMETERS_BY_NAME["autostart"].default is True


def test_parameter_file_keys_are_declared_with_valid_values():
    content = yaml.safe_load(PARAMS_FILE.read_text())
    assert list(content) == [interface.NODE_NAME]
    values = content[interface.NODE_NAME]["ros__parameters"]
    declared = interface.PARAMETERS_BY_NAME
    assert set(values) <= set(declared), f"undeclared keys: {set(values) - set(declared)}"
    assert set(values) == set(declared), f"parameters missing from pmp.yaml: {set(declared) - set(values)}"
    for name, value in values.items():
        assert type(value) is type(declared[name].default), name
        assert declared[name].validate(value) is None, declared[name].validate(value)


def test_fcclip_preset_is_taken_by_the_node_as_written():
    """config/fcclip.yaml as the launch file hands it to the node (--params-file): every key is a declared
    parameter (the node would ignore another), and the node declares and validates each value unchanged."""
    values = yaml.safe_load(FCCLIP_PRESET.read_text())[interface.NODE_NAME]["ros__parameters"]
    undeclared = set(values) - set(interface.PARAMETERS_BY_NAME)
    assert not undeclared, f"fcclip.yaml keys the node does not declare: {undeclared}"
    node_params = _node_parameters(FCCLIP_PRESET)
    assert {name: node_params[name] for name in values} == values


def test_parameter_validation_rejects_bad_values_with_reasons():
    params = interface.PARAMETERS_BY_NAME
    assert "must be <= 1.0" in params["score_threshold"].validate(1.5)
    assert "must be one of" in params["precision"].validate("int4")
    assert "must match" in params["device"].validate("gpu0")
    assert params["device"].validate("cuda:1") is None
    assert params["cameras"].validate(["head", "arm/wrist"]) is None and params["cameras"].validate([""]) is None
    assert "must match" in params["cameras"].validate(["/head"])
    assert "must differ" in params["cameras"].validate(["head", "head"])


@pytest.mark.launch_ros
def test_launch_starts_the_node():
    # Checked first: the repository's own launch/ folder makes a bare `import launch` succeed here.
    if importlib.util.find_spec("launch_ros") is None:
        pytest.skip("launch_ros is not installed: it needs a ROS 2 install (not on PyPI)")
    import threading
    import time

    from launch.actions import IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource

    import launch

    service = launch.LaunchService()
    service.include_launch_description(
        launch.LaunchDescription(
            [
                IncludeLaunchDescription(
                    PythonLaunchDescriptionSource(str(LAUNCH_FILE)), launch_arguments={"device": "cpu"}.items()
                )
            ]
        )
    )
    thread = threading.Thread(target=service.run, daemon=True)
    thread.start()
    import rclpy

    rclpy.init()
    node = rclpy.create_node("launch_probe")
    try:
        deadline = time.monotonic() + 120
        while interface.NODE_NAME not in node.get_node_names():
            assert time.monotonic() < deadline, "the launched node never appeared"
            time.sleep(0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown()
        service.shutdown()
        thread.join(timeout=30)


def test_launch_overrides_parse_the_launch_arguments_and_reject_bad_ones():
    assert interface.launch_overrides({"cameras": "", "tracking": ""}) == {}
    assert interface.launch_overrides({"cameras": "head, arm/wrist", "tracking": "False"}) == {
        "cameras": ["head", "arm/wrist"],
        "tracking": False,
    }
    with pytest.raises(ValueError, match="cameras.*must match"):
        interface.launch_overrides({"cameras": "/head"})
    with pytest.raises(ValueError, match="must differ"):
        interface.launch_overrides({"cameras": "head,head"})
    with pytest.raises(ValueError, match="tracking must be true or false"):
        interface.launch_overrides({"tracking": "on"})


def test_launch_declares_an_argument_for_each_override_and_passes_them():
    source = LAUNCH_FILE.read_text()
    for name in interface.LAUNCH_ARGUMENT_PARAMETERS:
        assert f'DeclareLaunchArgument(\n            "{name}"' in source, name
    assert "interface.launch_overrides(" in source and "**overrides" in source


def test_launch_overrides_reach_the_node_after_the_parameter_file(tmp_path):
    """What launch_ros does with the node's parameters (the params file, then a file of the dict after it):
    the overrides win over pmp.yaml, and the node declares and validates them."""
    overrides = interface.launch_overrides({"cameras": "head,wrist", "tracking": "false"})
    override_file = tmp_path / "overrides.yaml"
    override_file.write_text(yaml.safe_dump({interface.NODE_NAME: {"ros__parameters": overrides}}))
    node_params = _node_parameters(PARAMS_FILE, override_file)
    assert {name: node_params[name] for name in overrides} == overrides

"""The launch file and parameter file agree with the node.

launch_ros cannot be installed on machines without a ROS distribution, so most checks read the launch
file as source (compile, AST), and the override tests run the launch file's own functions against a stand-in
of the launch API (`_launch_with`: records what the file declares and hands the node; not launch_ros itself).
test_launch_starts_the_node really launches it and runs only where launch_ros imports (a ROS 2 install);
elsewhere it is skipped with that reason.

The parameter files are keyed /** (any node name and namespace): test_namespaced_node_loads_the_parameter_files.
"""

import ast
import importlib.util
import re
import sys
import types
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


def _node_parameters(*params_files: Path, namespace: str = "") -> dict:
    """The parameter values a SegmenterNode (in `namespace`) takes from these --params-file files, in order (it
    declares and validates them; the model loads later, at configure)."""
    import rclpy

    from pmp_ros.ros.node import SegmenterNode

    files = [x for path in params_files for x in ("--params-file", str(path))]
    rclpy.init(args=["--ros-args", *files, *(["-r", f"__ns:={namespace}"] if namespace else [])])
    try:
        node = SegmenterNode()
        try:
            return node.settings.values()
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
    assert callable(getattr(importlib.import_module(module), function, None)), f"{module} has no {function}()"
    assert constants["PACKAGE"] == "pmp_ros"
    assert constants["NODE_NAME"] == interface.NODE_NAME


def test_launch_remaps_the_node_topics(monkeypatch):
    defaults, node = _launched_node(monkeypatch)
    remappings = dict(node.kwargs["remappings"])
    for topic in (
        interface.IMAGE_TOPIC,
        interface.INSTRUCTION_TOPIC,
        interface.STRUCTURED_INSTRUCTION_TOPIC,
        interface.DEPTH_TOPIC,
        interface.DEPTH_INFO_TOPIC,
    ):
        target = remappings[topic]  # a launch argument's value
        assert isinstance(target, _LaunchConfiguration) and target.args[0] in defaults, topic
    # The compressed image topic follows the image argument.
    image, compressed = remappings[interface.IMAGE_TOPIC], remappings[interface.IMAGE_TOPIC + "/compressed"]
    assert [part.args if isinstance(part, _Recorded) else part for part in compressed] == [image.args, "/compressed"]


def test_launch_has_a_managed_mode_that_turns_autostart_off():
    assert interface.launch_overrides({"managed": "true"}) == {"autostart": False}
    assert interface.launch_overrides({"managed": "false"}) == {"autostart": True}
    assert interface.PARAMETERS_BY_NAME["autostart"].default is True


def test_parameter_file_keys_are_declared_with_valid_values():
    content = yaml.safe_load(PARAMS_FILE.read_text())
    assert list(content) == ["/**"]
    values = content["/**"]["ros__parameters"]
    declared = interface.PARAMETERS_BY_NAME
    assert set(values) <= set(declared), f"undeclared keys: {set(values) - set(declared)}"
    assert set(values) == set(declared), f"parameters missing from pmp.yaml: {set(declared) - set(values)}"
    for name, value in values.items():
        assert type(value) is type(declared[name].default), name
        assert declared[name].validate(value) is None, declared[name].validate(value)


def test_fcclip_preset_is_taken_by_the_node_as_written():
    """config/fcclip.yaml as the launch file hands it to the node (--params-file): every key is a declared
    parameter (the node would ignore another), and the node declares and validates each value unchanged."""
    values = yaml.safe_load(FCCLIP_PRESET.read_text())["/**"]["ros__parameters"]
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
    assert interface.launch_overrides(dict.fromkeys(interface.LAUNCH_ARGUMENT_PARAMETERS, "")) == {}
    assert interface.launch_overrides(
        {"cameras": "head, arm/wrist", "tracking": "False", "device": "cuda:1", "use_depth": "true"}
    ) == {"cameras": ["head", "arm/wrist"], "tracking": False, "device": "cuda:1", "use_depth": True}
    with pytest.raises(ValueError, match="cameras.*must match"):
        interface.launch_overrides({"cameras": "/head"})
    with pytest.raises(ValueError, match="must differ"):
        interface.launch_overrides({"cameras": "head,head"})
    with pytest.raises(ValueError, match="tracking must be true or false"):
        interface.launch_overrides({"tracking": "on"})
    with pytest.raises(ValueError, match="device.*must match"):
        interface.launch_overrides({"device": "gpu"})
    with pytest.raises(ValueError, match="not a launch argument"):
        interface.launch_overrides({"score_threshold": "0.5"})


class _Recorded:
    """Stands in for a launch action or substitution: records its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorded):
    def perform(self, context) -> str:
        return context.launch_configurations[self.args[0]]


def _launched_node(monkeypatch, **given: str) -> tuple[dict, _Recorded]:
    """Run launch/pmp.launch.py's generate_launch_description and its node function against a stand-in of
    the launch API (launch_ros is not installable here), with these launch arguments given and the others at
    their declared defaults; returns (the declared defaults, the Node it launches, with its arguments)."""
    fakes = {
        "launch": types.SimpleNamespace(LaunchDescription=list),
        "launch.actions": types.SimpleNamespace(
            DeclareLaunchArgument=_Recorded, OpaqueFunction=_Recorded, SetEnvironmentVariable=_Recorded
        ),
        "launch.conditions": types.SimpleNamespace(IfCondition=_Recorded),
        "launch.substitutions": types.SimpleNamespace(
            EnvironmentVariable=_Recorded, LaunchConfiguration=_LaunchConfiguration
        ),
        "launch_ros": types.SimpleNamespace(),
        "launch_ros.actions": types.SimpleNamespace(Node=_Recorded),
        "ament_index_python.packages": types.SimpleNamespace(get_package_share_directory=lambda name: f"/share/{name}"),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("pmp_launch_under_test", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    entities = module.generate_launch_description()
    defaults = {e.args[0]: e.kwargs["default_value"] for e in entities if e.args and "default_value" in e.kwargs}
    assert set(given) <= set(defaults), f"not declared: {set(given) - set(defaults)}"
    (node_function,) = [e.kwargs["function"] for e in entities if "function" in e.kwargs]
    (node,) = node_function(types.SimpleNamespace(launch_configurations={**defaults, **given}))
    return defaults, node


def _launch_with(monkeypatch, **given: str) -> tuple[dict, list]:
    """_launched_node's (the declared defaults, the parameters handed to the node)."""
    defaults, node = _launched_node(monkeypatch, **given)
    return defaults, node.kwargs["parameters"]


def test_launch_arguments_override_the_parameter_file_only_when_given(monkeypatch):
    defaults, parameters = _launch_with(monkeypatch)
    assert [p.args[0] for p in parameters[:1]] == ["params_file"] and parameters[1:] == [{}]
    assert defaults["params_file"] == "/share/pmp_ros/config/pmp.yaml"
    given = {"device": "cpu", "use_depth": "true", "managed": "true", "cameras": "head,wrist", "tracking": "false"}
    assert set(given) == set(interface.LAUNCH_ARGUMENT_PARAMETERS), "a launch argument without a case here"
    expected = {"device": "cpu", "use_depth": True, "autostart": False, "cameras": ["head", "wrist"], "tracking": False}
    for argument, text in given.items():
        _, parameters = _launch_with(monkeypatch, **{argument: text})
        name = interface.LAUNCH_ARGUMENT_PARAMETERS[argument]
        assert parameters[1:] == [{name: expected[name]}], argument
    _, parameters = _launch_with(monkeypatch, **given)
    assert parameters[1:] == [expected]


def test_a_users_parameter_file_survives_the_launch_defaults(tmp_path, monkeypatch):
    """A user's params_file with use_depth true (and device cpu, autostart false): launched without those
    arguments, the node keeps the file's values; what launch_ros does with the parameters (the file, then a
    file of the dict after it) is done here by hand."""
    users = tmp_path / "users.yaml"
    users.write_text(
        yaml.safe_dump({"/**": {"ros__parameters": {"use_depth": True, "device": "cpu", "autostart": False}}})
    )
    _, parameters = _launch_with(monkeypatch, params_file=str(users))
    override_file = tmp_path / "overrides.yaml"
    override_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters[1]}}))
    node_params = _node_parameters(users, override_file)
    assert (node_params["use_depth"], node_params["device"], node_params["autostart"]) == (True, "cpu", False)
    _, parameters = _launch_with(monkeypatch, params_file=str(users), use_depth="false")
    override_file.write_text(yaml.safe_dump({"/**": {"ros__parameters": parameters[1]}}))
    assert _node_parameters(users, override_file)["use_depth"] is False


def test_launch_overrides_reach_the_node_after_the_parameter_file(tmp_path):
    """What launch_ros does with the node's parameters (the params file, then a file of the dict after it):
    the overrides win over pmp.yaml, and the node declares and validates them."""
    overrides = interface.launch_overrides({"cameras": "head,wrist", "tracking": "false"})
    override_file = tmp_path / "overrides.yaml"
    override_file.write_text(yaml.safe_dump({interface.NODE_NAME: {"ros__parameters": overrides}}))
    node_params = _node_parameters(PARAMS_FILE, override_file)
    assert {name: node_params[name] for name in overrides} == overrides


@pytest.mark.parametrize("preset", [PARAMS_FILE, FCCLIP_PRESET], ids=["pmp", "fcclip"])
def test_namespaced_node_loads_the_parameter_files(preset):
    """A node in a namespace (a launch file's namespace:=robot) takes the shipped files' values: they are keyed
    /**, not by the node's name, which a namespace would make miss them."""
    values = yaml.safe_load(preset.read_text())["/**"]["ros__parameters"]
    node_params = _node_parameters(preset, namespace="/robot/perception")
    assert {name: node_params[name] for name in values} == values
    if preset == FCCLIP_PRESET:  # not the defaults, which a missed file would give
        assert (node_params["inference_width"], node_params["inference_height"]) == (1024, 768)

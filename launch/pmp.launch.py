"""Starts the pmp_ros segmentation node.

    ros2 launch pmp_ros pmp.launch.py image:=/camera/color/image_raw instruction:=/robot/instruction \
        depth:=/camera/aligned_depth_to_color/image_raw depth_info:=/camera/aligned_depth_to_color/camera_info \
        use_depth:=true namespace:=perception device:=cuda

    ros2 launch pmp_ros pmp.launch.py cameras:=head,wrist    # one node, one model: head/image, wrist/image, ...

The node is a managed (lifecycle) node; by default it configures and activates itself. managed:=true leaves
it unconfigured for a lifecycle manager (its autostart parameter false).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from pmp_ros.ros import interface

PACKAGE = "pmp_ros"
EXECUTABLE = "pmp_node"
NODE_NAME = "pmp_segmenter"


def generate_launch_description() -> LaunchDescription:
    share = get_package_share_directory(PACKAGE)
    arguments = [
        DeclareLaunchArgument("namespace", default_value="", description="Namespace of the node and its topics"),
        DeclareLaunchArgument("image", default_value="image", description="Colour image topic"),
        DeclareLaunchArgument("instruction", default_value="instruction", description="Instruction topic"),
        DeclareLaunchArgument(
            "structured_instruction",
            default_value="structured_instruction",
            description="Structured instruction topic (pmp_ros_msgs/Instruction)",
        ),
        DeclareLaunchArgument("depth", default_value="depth/image", description="Depth image topic"),
        DeclareLaunchArgument(
            "depth_info", default_value="depth/camera_info", description="CameraInfo of the depth image"
        ),
        DeclareLaunchArgument(
            "use_depth",
            default_value="",
            description="true/false: publish 3D points from depth; empty: the params_file's",
        ),
        DeclareLaunchArgument(
            "params_file", default_value=os.path.join(share, "config", "pmp.yaml"), description="ROS parameter file"
        ),
        DeclareLaunchArgument(
            "device", default_value="", description="auto, cpu, cuda or cuda:N; empty: the params_file's"
        ),
        DeclareLaunchArgument(
            "managed",
            default_value="",
            description="true: leave the lifecycle node unconfigured for a lifecycle manager (autostart false); "
            "false: autostart; empty: the params_file's",
        ),
        DeclareLaunchArgument(
            "cameras",
            default_value="",
            description="Comma-separated camera namespaces (head,wrist): one node and one model for all; empty: the "
            "params_file's (one camera on the plain topics)",
        ),
        DeclareLaunchArgument(
            "tracking",
            default_value="",
            description="true/false: stable track ids over frames; empty: the params_file's",
        ),
        DeclareLaunchArgument(
            "use_fastdds_profile",
            default_value="true",
            description="Use the package's Fast DDS profile (large shared-memory segment)",
        ),
    ]
    # The node applies the profile itself unless one is set; exporting it here also covers components
    # launched beside it (camera drivers) so they share the large segment.
    profile = SetEnvironmentVariable(
        "FASTDDS_DEFAULT_PROFILES_FILE",
        EnvironmentVariable(
            "FASTDDS_DEFAULT_PROFILES_FILE", default_value=os.path.join(share, "config", "fastdds.xml")
        ),
        condition=IfCondition(LaunchConfiguration("use_fastdds_profile")),
    )
    return LaunchDescription([*arguments, profile, OpaqueFunction(function=_segmenter_node)])


def _segmenter_node(context) -> list[Node]:
    """The node, with the launch arguments that override the parameter file only when given (an empty one, the
    default, leaves the params_file's value: interface.launch_overrides)."""
    overrides = interface.launch_overrides(
        {name: LaunchConfiguration(name).perform(context) for name in interface.LAUNCH_ARGUMENT_PARAMETERS}
    )
    node = Node(
        package=PACKAGE,
        executable=EXECUTABLE,
        name=NODE_NAME,
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file"), overrides],
        remappings=[
            ("image", LaunchConfiguration("image")),
            ("image/compressed", [LaunchConfiguration("image"), "/compressed"]),
            ("instruction", LaunchConfiguration("instruction")),
            ("structured_instruction", LaunchConfiguration("structured_instruction")),
            ("depth/image", LaunchConfiguration("depth")),
            ("depth/camera_info", LaunchConfiguration("depth_info")),
        ],
        output="screen",
        emulate_tty=True,
    )
    return [node]

"""Fixtures of the bag tests."""

import pytest
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore


@pytest.fixture
def write_odd_bag():
    """write(path): a bag whose depth topic has an unknown type and whose image topic a wrong one, as a
    misconfigured robot recording."""

    def write(path):
        store = get_typestore(Stores.ROS2_KILTED)
        store.register(get_types_from_msg("int32 x", "foo_msgs/msg/Bar"))
        with Writer(path, version=8, storage_plugin=StoragePlugin.MCAP) as writer:
            bar = writer.add_connection("/depth/image", "foo_msgs/msg/Bar", typestore=store)
            text = writer.add_connection("/image", "std_msgs/msg/String", typestore=store)
            writer.write(bar, 1, store.serialize_cdr(store.types["foo_msgs/msg/Bar"](x=1), "foo_msgs/msg/Bar"))
            string = store.types["std_msgs/msg/String"](data="hello")
            writer.write(text, 2, store.serialize_cdr(string, "std_msgs/msg/String"))

    return write

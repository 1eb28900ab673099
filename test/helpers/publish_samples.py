"""Publishes every sample message at 20 Hz until interrupted (the sending side of test_messages)."""

import rclpy

from pmp_ros.ros.client import spin_until_shutdown

# Run as a script, so its own folder (test/helpers) is on the import path.
from message_samples import MESSAGE_TYPES, SAMPLE_TOPICS, samples


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("pmp_sample_publisher")
    messages = samples()
    publishers = {name: node.create_publisher(MESSAGE_TYPES[name], topic, 10) for name, topic in SAMPLE_TOPICS.items()}

    def publish_all():
        for name, publisher in publishers.items():
            publisher.publish(messages[name])

    node.create_timer(0.05, publish_all)
    print("publishing", flush=True)
    spin_until_shutdown(node)


if __name__ == "__main__":
    main()

"""Publishes every sample message at 20 Hz until interrupted (the sending side of test_messages)."""

import sys
from pathlib import Path

import rclpy
from rclpy.executors import ExternalShutdownException

sys.path.insert(0, str(Path(__file__).parent))
from message_samples import MESSAGE_TYPES, SAMPLE_TOPICS, samples  # noqa: E402


def main() -> None:
    rclpy.init()
    node = rclpy.create_node("pmp_sample_publisher")
    messages = samples()
    publishers = {name: node.create_publisher(MESSAGE_TYPES[name], topic, 10)
                  for name, topic in SAMPLE_TOPICS.items()}

    def publish_all():
        for name, publisher in publishers.items():
            publisher.publish(messages[name])

    node.create_timer(0.05, publish_all)
    print("publishing", flush=True)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()

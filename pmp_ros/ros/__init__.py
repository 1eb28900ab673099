"""ROS 2 glue: the node, image and message conversion. The only package that imports rclpy."""

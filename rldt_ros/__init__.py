"""rldt_ros: the robot side. numpy + onnxruntime + rclpy; never torch."""

"""rosbag2 tools built on the pure-Python ``rosbags`` library (no rosbag2 needed): offline
encoding of raw-image bags (``bag encode``), decoding to raw-image bags, PNG frames or a review
video (``bag decode``), bag statistics (``bag info``) and recording of live topics
(``mm-compress record``, the only part that imports rclpy, and only when it runs).
See docs/rosbag.md."""

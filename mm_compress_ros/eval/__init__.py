"""Evaluation: traditional-codec anchors (x265, JPEG), quality metrics, BD-rate, RD reports.

Nothing here imports rclpy. ``mm-compress eval`` is registered by :mod:`.report` (the command
line); :mod:`.engine` measures, :mod:`.cache` keeps measured points, :mod:`.tables` writes the report.
"""

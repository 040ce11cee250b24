"""mm_compress_ros: learned multi-modality (RGB + thermal) video compression for ROS 2.

This package is installed two ways that must coexist:

* ``pip install -e .`` (or a plain pip install): codec, training, evaluation, CLI; no ROS needed.
* ``colcon build``: the same package copied next to the rosidl-generated ``mm_compress_ros.msg``.

Whichever copy Python imports first, ``__path__`` is extended with every other ``mm_compress_ros``
directory on ``sys.path``, so ``mm_compress_ros.msg`` (only in the colcon install) and the
hand-written subpackages are both importable. Keep this module free of heavy imports: importing
``mm_compress_ros.codec`` must never import rclpy.
"""
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)  # noqa: F821  (module attribute set by the import system)

__version__ = "0.1.0"

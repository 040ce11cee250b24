"""pip install of mm_compress_ros without ROS (codec, training, evaluation, `mm-compress`).

The ROS side (rosidl messages, node executables, launch files) is built by colcon from
CMakeLists.txt/package.xml; both installs provide the same `mm_compress_ros` Python package
(see mm_compress_ros/__init__.py for how they coexist).

Versions are pinned in one place, requirements.txt; install_requires takes the non-ROS pins from
there (never an unpinned torch: pip would pull a different multi-GB build). `make venv` installs
requirements.txt first and then this package with --no-deps.
"""
from glob import glob
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent

# Runtime dependencies of the ROS-free part, pinned exactly as in requirements.txt.
_RUNTIME = {
    "torch", "torchvision", "compressai", "numpy", "opencv-python-headless", "av", "rosbags",
    "pytorch-msssim", "safetensors", "tqdm", "matplotlib",
}


def _pinned_requirements():
    reqs = []
    for line in (HERE / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.split("==", 1)[0].strip().lower()
        if name in _RUNTIME:
            reqs.append(line)
    return reqs


setup(
    name="mm_compress_ros",
    version="0.1.0",
    description="Learned multi-modality (RGB + thermal) video compression, with ROS 2 nodes",
    license="MIT",
    python_requires=">=3.10",
    # The package sits at the repository root; saying so ("" -> ".") makes an editable install put
    # the root on sys.path (a .pth line, as `setup.py develop` did) instead of an import hook, so
    # that mm_compress_ros/__init__.py's extend_path still sees this copy beside a colcon install.
    package_dir={"": "."},
    packages=find_packages(include=["mm_compress_ros", "mm_compress_ros.*"]),
    # Model weights and cards live in models/ at the repository root (colcon installs them to
    # share/mm_compress_ros/models); a pip install puts them at the same place under sys.prefix.
    data_files=[
        ("share/mm_compress_ros/models",
         sorted(p for p in glob("models/*") if Path(p).is_file() and not Path(p).name.startswith("."))),
    ],
    install_requires=_pinned_requirements(),
    entry_points={"console_scripts": ["mm-compress = mm_compress_ros.cli:main"]},
)

# mm_compress_ros: two commands on a fresh machine (Python 3.11, make, cmake, a C/C++ compiler).
#   make demo   venv + colcon build + sample -> encoder -> decoder over DDS (DATA=path for real frames)
#   make test   venv + colcon build (+ Chromium for the viewer test) + the whole test suite
# All ROS environment setup lives in scripts/ros_env.sh.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := demo

PYTHON ?= python3.11
VENV ?= .venv
VENV_STAMP := $(VENV)/.mm_compress_ros.stamp
ROS_ENV := export MMC_VENV="$(abspath $(VENV))"; source scripts/ros_env.sh
BUILD_STAMP := install/mm_compress_ros/share/mm_compress_ros/package.xml
PYTEST_ARGS ?=
DATA ?=
DEMO_ARGS ?=

.PHONY: venv build browser test demo results clean

venv: $(VENV_STAMP)

$(VENV_STAMP): requirements.txt setup.py pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check -r requirements.txt
	$(VENV)/bin/python -m pip install --disable-pip-version-check --no-deps -e .
	touch $@

# colcon build of this package (the repository root is the package) into build/ and install/.
build: venv
	$(ROS_ENV); colcon --log-base log build --base-paths . --build-base build --install-base install \
	  --event-handlers console_cohesion+ summary+ \
	  --cmake-args -DPython3_EXECUTABLE="$$VIRTUAL_ENV/bin/python" -DBUILD_TESTING=OFF

# test/test_viewer.py drives Debian's headless Chromium: installed here when missing (as root,
# e.g. in CI), else one line saying how (that test then fails with the same hint).
browser:
	command -v chromium >/dev/null || { if [ "$$(id -u)" -eq 0 ]; then apt-get update && apt-get install -y chromium; \
	  else echo "make: chromium is missing (test/test_viewer.py needs it): sudo apt-get install chromium" >&2; fi; }

# pytest's own exit status is kept in log/pytest-exit-code (make itself exits 2 on any failure);
# exit 5 means no test was collected, which CI treats as a failure (nothing was proven).
test: build browser
	mkdir -p log; rm -f log/pytest-exit-code
	$(ROS_ENV); rc=0; python -m pytest test/ $(PYTEST_ARGS) || rc=$$?; echo $$rc > log/pytest-exit-code; \
	  if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests (exit 5)" >&2; fi; exit $$rc

demo: build
	$(ROS_ENV); python -m mm_compress_ros.ros.demo $(if $(DATA),--data "$(DATA)") $(DEMO_ARGS)

# docs/results.md: rate-distortion of the shipped model against x265 and JPEG on m3svd_seq
# (RESULTS_ARGS="--frames 10" for a quicker run; see benchmarks/results.py --help)
RESULTS_ARGS ?=
# then the Profiles section (the standard profiles, hybrid H.264/H.265 with both shipped designs, the
# learned profile and the anchors, same frames; mmrt's card gets its measured points)
PROFILES_ARGS ?= --model mmvc:1,3,6 --model mmrt:1,22,43,64 --update-cards
results: venv
	MMC_VIA_MAKE=1 $(VENV)/bin/python benchmarks/results.py $(RESULTS_ARGS)
	$(VENV)/bin/python benchmarks/profiles.py $(PROFILES_ARGS)

clean:
	rm -rf build install log

# device/ (git-ignored): the CompressAI wheels and as much training data as fits beside the working
# tree in the 64 MiB that travels to the lent GPU machine (docs/training.md, "One-shot GPU run");
# ARCH=rt packs for the real-time codec (its RGB coded by H.264 here: the GPU machine has no encoder)
PACK_ARGS ?=
.PHONY: device-pack
device-pack:
	$(VENV)/bin/python -m mm_compress_ros.train.pack --out device --arch $(or $(ARCH),mmvc) $(PACK_ARGS)

# shellcheck shell=bash
# The one place that sets up the environment for building and running mm_compress_ros with ROS 2.
# Source it (bash):  source scripts/ros_env.sh
#
# * uses the project venv (MMC_VENV, default .venv) when it exists, else whatever ROS is sourced;
# * AMENT_PREFIX_PATH / CMAKE_PREFIX_PATH include the venv (the ROS PyPI wheels install there);
# * sources install/setup.bash when the package was built (it fails under `set -u`: guarded);
# * RMW_IMPLEMENTATION=rmw_fastrtps_cpp, ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST,
#   a ROS_DOMAIN_ID per run unless one is given, and the Fast DDS profile config/fastdds_shm.xml
#   (16 MiB shared-memory segment: without it large best-effort images never arrive).
# Safe to source under `set -euo pipefail`.

MMC_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export MMC_ROOT
MMC_VENV="${MMC_VENV:-$MMC_ROOT/.venv}"

_mmc_prepend() {  # _mmc_prepend VAR DIR: prepend DIR to the colon list VAR unless present
  local var="$1" dir="$2" cur
  cur="${!var:-}"
  case ":$cur:" in
    *":$dir:"*) ;;
    *) export "$var=$dir${cur:+:$cur}" ;;
  esac
}

if [ -x "$MMC_VENV/bin/python" ]; then
  export VIRTUAL_ENV="$MMC_VENV"
  _mmc_prepend PATH "$MMC_VENV/bin"
  _mmc_prepend AMENT_PREFIX_PATH "$MMC_VENV"
  _mmc_prepend CMAKE_PREFIX_PATH "$MMC_VENV"
fi

if [ -f "$MMC_ROOT/install/setup.bash" ]; then
  # colcon's setup scripts read unset variables: run them with nounset off, then restore.
  case $- in *u*) _mmc_had_u=1 ;; *) _mmc_had_u=0 ;; esac
  set +u
  # shellcheck disable=SC1091
  COLCON_CURRENT_PREFIX="$MMC_ROOT/install" source "$MMC_ROOT/install/setup.bash"
  if [ "$_mmc_had_u" = 1 ]; then set -u; fi
  unset _mmc_had_u
fi

export RMW_IMPLEMENTATION="${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Fast DDS accepts domain ids 0..232; pick one per run (from this shell's PID) unless given.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$(( ($$ % 200) + 20 ))}"
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$MMC_ROOT/config/fastdds_shm.xml}"
export RCUTILS_COLORIZED_OUTPUT="${RCUTILS_COLORIZED_OUTPUT:-0}"
export PYTHONUNBUFFERED=1
unset -f _mmc_prepend

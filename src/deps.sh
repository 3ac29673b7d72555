#!/bin/sh
# deps.sh: installs the Debian packages superpose needs, if any is missing.
# As root it runs apt-get; otherwise it prints exactly what to install.
need=""
has_pc() { pkg-config --exists "$1" 2>/dev/null; }
command -v pkg-config >/dev/null 2>&1 || need="$need pkg-config"
has_pc gsl        || need="$need libgsl-dev"
has_pc openblas   || need="$need libopenblas-dev"
has_pc check      || need="$need check"
has_pc sqlite3    || need="$need libsqlite3-dev"
has_pc inih       || need="$need libinih-dev"
command -v gnuplot >/dev/null 2>&1 || need="$need gnuplot-nox"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v make >/dev/null 2>&1 || need="$need make"
[ -z "$need" ] && exit 0
echo "superpose: missing Debian packages:$need"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq $need >/dev/null && {
        echo "superpose: installed$need"; exit 0; }
    echo "superpose: apt-get failed; install by hand:" >&2
fi
echo "superpose: please run:  sudo apt-get install -y$need" >&2
exit 1

#!/bin/sh
# test_python.sh - make check's driver of the Python face's tests (python/tests, unittest)
# against the build tree's libdiffalg (DIFFALG_LIB=<builddir>/.libs/libdiffalg.so).
# Interpreter: DA_PYTHON, default /usr/bin/python3 (Debian's, with python3-numpy and
# python3-torch). Exits 77 (automake SKIP) ONLY when that interpreter or NumPy is missing;
# scripts/setup installs both, so a skip must not happen on the project's machines. The
# PyTorch tests inside skip themselves only when torch cannot be imported.
py=${DA_PYTHON:-/usr/bin/python3}
if [ ! -x "$py" ]; then
    echo "test_python: SKIP: no Python interpreter at $py (Debian package python3)"
    exit 77
fi
if ! "$py" -c 'import numpy' 2>/dev/null; then
    echo "test_python: SKIP: $py has no NumPy (Debian package python3-numpy)"
    exit 77
fi
lib="$(pwd)/.libs/libdiffalg.so"
if [ ! -f "$lib" ]; then
    echo "test_python: FAIL: $lib not found (the Python face needs the shared library)"
    exit 1
fi
# a library built with AddressSanitizer (configure --enable-sanitizers, as in CI's
# distcheck) needs the ASan runtime loaded before the interpreter's own libraries; leak
# detection is off because the interpreter keeps its allocations at exit (the C test
# programs check libdiffalg for leaks)
asan=$(ldd "$lib" 2>/dev/null | awk '/libasan\.so/ {print $3}')
if [ -n "$asan" ]; then
    ubsan=$(ldd "$lib" 2>/dev/null | awk '/libubsan\.so/ {print $3}')
    LD_PRELOAD="$asan${ubsan:+ $ubsan}${LD_PRELOAD:+ $LD_PRELOAD}"
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    export LD_PRELOAD ASAN_OPTIONS
    echo "test_python: sanitizer build: LD_PRELOAD=$LD_PRELOAD"
fi
"$py" -c 'import torch' 2>/dev/null ||
    echo "test_python: WARNING: $py cannot import torch: the PyTorch tests are skipped"
: "${srcdir:=$(dirname "$0")/..}"
cd "$srcdir/python" || exit 1
DIFFALG_LIB=$lib PYTHONDONTWRITEBYTECODE=1 exec "$py" -m unittest discover -s tests -t tests -v

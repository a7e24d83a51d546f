"""setup.py - `pip install ./python` (offline: setuptools only, no build isolation needed
since there is no pyproject.toml) installs the pure-Python package diffalg. It needs the C
library libdiffalg installed (make install) or DIFFALG_LIB pointing at it, and NumPy;
diffalg.torch needs PyTorch."""
from setuptools import setup

setup(
    name="diffalg",
    version="0.1.0",
    description="Differentiable algorithm losses (libdiffalg) from NumPy and PyTorch via ctypes",
    packages=["diffalg"],
    python_requires=">=3.7",
    install_requires=["numpy"],
    extras_require={"torch": ["torch"]},
)

"""Build hook: cffi compiles the C core of synapse_native at install time (API mode, out of line).

Everything else about the distribution lives in pyproject.toml.
"""

from setuptools import setup

setup(cffi_modules=["native/_cffi_build.py:native_builder", "native/_cffi_build.py:stats_builder"])

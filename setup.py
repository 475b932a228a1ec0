"""Build hook: setuptools compiles native/ into dataplane._native through cffi.

`cffi_modules` can only be given to setup(), so this file exists for that one line;
everything else about the package is in pyproject.toml.
"""
from setuptools import setup

setup(cffi_modules=["native/build_native.py:ffibuilder"])

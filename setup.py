"""Build step for the one C extension; everything else is in pyproject.toml.

``symato.text._fastdecode`` is the tokenizer's compiled decode loop (plain C against the
Python C API: no torch, no numpy headers). It is built by every install (``pip install
-e .``, ``pip install .``, wheels), so an install needs a C compiler and the Python
headers (Debian: ``apt-get install gcc python3-dev``). In a checkout used through
PYTHONPATH, build it in place: ``python setup.py build_ext --inplace``.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("symato.text._fastdecode", ["symato/text/_fastdecode.c"],
                             extra_compile_args=["-Wall", "-Wextra",
                                                 "-Wno-unused-parameter"])])

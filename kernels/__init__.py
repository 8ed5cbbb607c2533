"""C++ and CUDA kernel sources of the WKV operators (see docs/wkv.md).

This folder is installed as the package ``symato.kernels`` (pyproject.toml maps it), so
an installed symato can compile its extensions without a checkout. Nothing to import.
"""

"""The compiled operators the architectures use, each with a PyTorch reference:
``wkv4`` (RWKV-4's WKV) and ``wkv7`` (RWKV-7's). Kernel sources are the top-level
``kernels/`` folder, installed as the package data ``symato.kernels``; ``extension``
builds and loads them (one loader, one backend policy for both) and ``build`` is the
``symato build`` command that builds them once per workflow.
"""

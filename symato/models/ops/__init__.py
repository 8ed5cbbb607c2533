"""The compiled operators the architectures use, each with a PyTorch reference:
``wkv4`` (RWKV-4's WKV). Kernel sources are the top-level ``kernels/`` folder, installed
as the package data ``symato.kernels``; ``extension`` builds them.
"""

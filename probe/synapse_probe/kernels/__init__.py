"""The per-site statistics kernels: the native one for CPU tensors, Triton's for CUDA ones,
and torch reductions for any other device, all without a host sync.
"""

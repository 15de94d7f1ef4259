"""The one thing pyproject.toml cannot say without an experimental table: three optional C extensions,
loaded through ctypes (embridge/native.py): the evaluation scan's AVX-512 comparison counting
(pipeline/evaluation/_countc.c; where the CPU lacks AVX-512F, the library reports so and numba counts),
the training loops' Gaussian noise (pipeline/methods/_noisec.c; compiled without fused
multiply-adds, so that every build gives the bits of its numpy version in methods/noise.py), and the
row norms and checks (pipeline/_rowsc.c, also without fused multiply-adds: numpy's bits). Where one
does not build (no C compiler, not x86-64), the install goes on and the Python path takes its place."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("embridge.evaluation._countc", ["pipeline/evaluation/_countc.c"], optional=True,
              extra_compile_args=["-O2"]),
    Extension("embridge.methods._noisec", ["pipeline/methods/_noisec.c"], optional=True,
              extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno"]),
    Extension("embridge._rowsc", ["pipeline/_rowsc.c"], optional=True,
              extra_compile_args=["-O3", "-ffp-contract=off", "-fno-math-errno"]),
])

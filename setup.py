"""The one thing pyproject.toml cannot say without an experimental table: the evaluation scan's
AVX-512 comparison counting (pipeline/evaluation/_countc.c, loaded by evaluation/counting.py through
ctypes). Optional: where it does not build (no C compiler, not x86-64), the install goes on and the
numba kernel counts instead; where the CPU lacks AVX-512F, the library reports so and numba counts."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("embridge.evaluation._countc", ["pipeline/evaluation/_countc.c"], optional=True,
                             extra_compile_args=["-O2"])])

"""Build hook for the optional C kernels (``native/``); all metadata is in pyproject.toml.

``optional=True``: when there is no C compiler (or no Python headers) the build
prints a warning and goes on without ``vidproof.stamp._native``; the package then
uses its numpy kernels, which are the reference.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vidproof.stamp._native",
            sources=["native/vidproof_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)

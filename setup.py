"""Build hook for the optional C kernels (``native/``); all metadata is in pyproject.toml.

``optional=True``: when there is no C compiler (or no Python headers) the build
prints a warning and goes on without ``vidproof.stamp._native`` (stamp and
fingerprint kernels) and ``vidproof._bitstream`` (start-code scanner); the package
then uses its numpy and Python code, which is the reference.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vidproof.stamp._native",
            sources=["native/vidproof_native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
        Extension(
            "vidproof._bitstream",
            sources=["native/vidproof_bitstream.c"],
            extra_compile_args=["-O3"],
            optional=True,
        ),
    ]
)

"""The package version, in one place: read by setuptools (statically, without importing jax) and by ``ott_fast``."""

__version__ = "0.1.0"

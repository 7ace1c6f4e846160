"""Packages: grover_jax, and configs/ installed as grover_jax.configs (the run configs stay at the
top of the repository, as the design card wants, without a top-level `configs` in site-packages).
Everything else is in pyproject.toml; pyproject alone cannot list found packages beside a mapped one."""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["grover_jax", "grover_jax.*"]), "grover_jax.configs"],
      package_dir={"grover_jax.configs": "configs"})

"""The package version, in one place (`supernet.__version__`, results provenance, pyproject.toml)."""

__version__ = "0.5.0"

"""The package version (a leaf: the metadata, --version and every results file read it)."""

__version__ = "0.1.0"

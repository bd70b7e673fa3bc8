"""hotswap: a zero-downtime deploy proxy for apps running in Docker on one host."""

__version__ = "0.1.0"

__all__ = ["__version__"]

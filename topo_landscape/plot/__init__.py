"""Pictures: each function returns a matplotlib Figure and never touches global pyplot state."""

from .surface import surface

__all__ = ["surface"]

"""Pictures: each function returns a matplotlib Figure and never touches global pyplot state."""

from .comparison import compare, paper_style
from .diagrams import diagram, merge_tree
from .layout import Basin, main_basin_top, profile_layout
from .profiles import profile, profile_drawing
from .surfaces import surface, surface_html

__all__ = [
    "Basin",
    "compare",
    "diagram",
    "merge_tree",
    "paper_style",
    "profile",
    "profile_layout",
    "profile_drawing",
    "main_basin_top",
    "surface",
    "surface_html",
]

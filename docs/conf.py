"""Sphinx configuration: `./dev docs` builds the site into docs/_build/html."""

import topo_landscape

project = "topo_landscape"
author = "The topo_landscape developers"
release = version = topo_landscape.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "make_gallery.py"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc Parameters sections say it, readably
napoleon_google_docstring = False
napoleon_use_rtype = False
html_theme = "alabaster"
nitpicky = True
# other projects' objects cannot be linked without network access (no intersphinx)
# and numpydoc type fields ('ndarray of shape (n,)', '{"filter", "layer"}') are prose, not
# references: check only what names one of our objects (a capitalised or topo_landscape. name)
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|scipy|matplotlib|networkx|nx|h5py|pandas|gudhi|plotly)\..*"),
    (r"py:.*", r"(?!([A-Z]\w+|topo_landscape\.[\w.]+)$).*"),
    (
        r"py:.*",
        r"(Figure|Axes|Normalize|DiGraph|Module|Tensor|DataFrame|Literal|Path|None|True|False)",
    ),
]

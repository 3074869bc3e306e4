"""Views turn a `Run` into something to look at. They return strings, renderables or bytes and never print."""

# Chosen tokens per row in graphs. Here, not in views/graph.py, so the CLI can show the default in
# --help without importing the graph code.
DEFAULT_WRAP = 12

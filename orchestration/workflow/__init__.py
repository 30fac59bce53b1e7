"""Workflows as graphs of typed nodes (see ``graph.py``), and the builders users write them with
(``builders.py``)."""

"""Connectors, one module per catalog `kind:`, named after the kind it registers.

Importing this package imports none of them: `base.connector_class` imports the module of the
kind a catalog names (each pulls in its own format libraries: trafilatura, wordfreq, lxml, ...),
and `base.known_kinds` imports them all.
"""

"""One module per tab; each has plain handler functions and a ``render`` that lays the tab out and wires events."""

"""The operator's dead-letter replay: ``python -m consumer dlq replay``.

``select`` reads dead letters and decides which go back; ``command`` sends them
to their source topics; ``progress`` draws the progress line on a terminal.
"""

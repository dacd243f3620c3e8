"""The ``spinalnet`` command line: argument parsing, YAML configs and one-line messages; nothing below imports it."""

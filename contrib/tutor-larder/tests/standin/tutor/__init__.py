"""Stand-in for the `tutor` package (see hooks/__init__.py): Tutor is not installable on the test machine."""

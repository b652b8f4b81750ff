"""Stand-in for the `tutormfe` package (tutor-mfe v21.0.0): only its hooks module, which plugins import."""

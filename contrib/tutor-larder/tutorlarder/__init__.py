__version__ = "21.0.0"

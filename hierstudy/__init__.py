"""hierstudy: a reproducible notebook study of hierarchy-aware image recognition and retrieval."""

__version__ = "0.1.0"

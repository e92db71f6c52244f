"""Entry points a person runs from the repository root (``python -m scripts.<name>``)."""

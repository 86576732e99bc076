"""Adapters to other code bases' conventions."""

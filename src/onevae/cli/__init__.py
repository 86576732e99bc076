"""The ``onevae`` command line."""

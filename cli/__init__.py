"""The ``curate`` command line (typer): a thin shell over :mod:`curate.api`."""

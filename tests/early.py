"""Loaded before every other plugin (``pytest -p tests.early``, as the Makefile runs pytest): the
same process guard the product's processes set first (runbook_lib.core.process.prepare), so that
nbformat's import does not compile jsonschema's IRI grammar (2.3 s) in every test process."""

from runbook_lib.core import process

process.prepare()

"""Placeholder: mutation-testing tests of this module follow."""

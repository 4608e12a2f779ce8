"""Errors that reach the user.

Every error a user can cause (a broken config, profile, genotype, state file or data folder) is
an :class:`EdgeevoError`. The command line prints its message on one line and exits with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgeevoError(Exception):
    """A problem with the user's input; the message names the value and what was expected."""


class ConfigError(EdgeevoError, ValueError):
    """The search config is missing, is not TOML, or holds a value outside its accepted range."""


class GenotypeError(EdgeevoError, ValueError):
    """A genotype document is malformed: wrong shape, unknown op, an input that does not exist."""


class OutOfSpaceError(EdgeevoError):
    """A well-formed genotype that the configured search space does not contain."""


class DataError(EdgeevoError):
    """The data root does not hold the data set the config names, or holds it damaged."""


class ProfileError(EdgeevoError):
    """A device profile is missing, malformed or made for another search space."""


class StateError(EdgeevoError):
    """The state database is missing, damaged, of another schema, or belongs to another search."""


class TableError(EdgeevoError):
    """A table of evaluated architectures is missing, malformed, or lacks a proposed one."""

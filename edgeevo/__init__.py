"""edgeevo: aging evolution for image classifiers that are fast on a named target PC."""

__version__ = "0.1.0"

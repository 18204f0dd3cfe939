"""vpr-embedded: visual place recognition on small devices."""

__version__ = "0.1.0"

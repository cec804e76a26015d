"""The ``savg`` console script."""

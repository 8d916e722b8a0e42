"""Models that predict expression from binned accessibility."""

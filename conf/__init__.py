"""Hydra configs of sgtrain-train (a package so that Hydra finds them in an installed wheel)."""

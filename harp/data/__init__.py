"""Data: the embedded offline corpus, calibration sets and evaluation fixtures."""

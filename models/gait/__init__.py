"""BSLIP walking model family (``gait.bslip``)."""

"""Alert detector evaluation: simulated labelled series, matched thresholds, NAB real data."""

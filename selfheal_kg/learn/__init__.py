"""Learning from outcomes: statistics, patterns, reports."""

"""finpulse: a streaming monitor of financial news for risk teams."""

__version__ = "0.1.0"

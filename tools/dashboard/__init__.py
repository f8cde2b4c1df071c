"""The demo's news: validation tweets (or generated headlines) with a negative episode."""

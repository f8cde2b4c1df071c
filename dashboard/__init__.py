"""The analyst's view: a JSON API over the store and alert engine, and the page served beside it."""

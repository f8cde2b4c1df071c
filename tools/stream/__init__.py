"""Stream developer tools: the pipeline benchmark, the fault suite and the sandbox they share."""

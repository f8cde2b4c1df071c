"""Model tools: the tiny test encoder and the scoring benchmark."""

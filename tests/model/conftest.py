from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_registry(tmp_path_factory) -> Path:
    """A registry holding one tiny few-shot model, promoted to champion."""
    from tools.model.tiny import train_tiny_model

    root = tmp_path_factory.mktemp("registry")
    train_tiny_model(root, method="few-shot")
    return root


@pytest.fixture(scope="session")
def tiny_scorer(tiny_registry):
    from model.scorer import Scorer
    from tools.model.tiny import tiny_settings

    return Scorer.load("champion", tiny_settings(tiny_registry))

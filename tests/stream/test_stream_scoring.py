import pytest
from stream_helpers import FakeModels, KeywordScorer, make_article

from stream.scoring import BatchScorer, NoModelError


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_scores_a_batch_and_records_metrics(metrics):
    scorer = BatchScorer(FakeModels(), metrics)
    result = scorer.score([make_article(1, "Market crash"), make_article(2, "Earnings beat")])
    assert [(a.sentiment.value, a.topic, a.model_version) for a in result.scored] == [
        ("negative", "markets", "v1"),
        ("positive", "earnings", "v1"),
    ]
    r = metrics.registry
    assert (
        r.get_sample_value(
            "finpulse_articles_scored_total", {"topic": "markets", "sentiment": "negative"}
        )
        == 1
    )
    assert r.get_sample_value("finpulse_scoring_batch_size_sum") == 2
    assert r.get_sample_value("finpulse_scoring_latency_seconds_count") == 1
    assert r.get_sample_value("finpulse_model_info", {"version": "v1"}) == 1


def test_model_info_says_how_the_scorer_runs_on_this_machine(metrics):
    class Models(FakeModels):
        def load(self, version):
            scorer = super().load(version)
            scorer.scoring = {"path": "onnx-int8", "dtype_policy": "float32", "reason": "VNNI"}
            return scorer

    BatchScorer(Models(), metrics).score([make_article(1)])
    labels = {"version": "v1", "scoring_path": "onnx-int8", "dtype_policy": "float32"}
    assert metrics.registry.get_sample_value("finpulse_model_info", labels) == 1


def test_hot_reload_switches_between_batches_only_after_the_check_interval(metrics):
    models, clock = FakeModels("v1"), Clock()
    scorer = BatchScorer(models, metrics, check_every_s=5, clock=clock)
    assert scorer.score([make_article(1)]).scored[0].model_version == "v1"
    models.champion = "v2"
    clock.t = 4
    assert scorer.score([make_article(2)]).scored[0].model_version == "v1"
    clock.t = 6
    assert scorer.score([make_article(3)]).scored[0].model_version == "v2"
    assert models.loaded == ["v1", "v2"]
    assert metrics.registry.get_sample_value("finpulse_model_info", {"version": "v2"}) == 1


def test_a_model_that_fails_to_load_keeps_the_old_one(metrics):
    models = FakeModels("v1")
    scorer = BatchScorer(models, metrics, check_every_s=0)
    scorer.score([make_article(1)])
    models.champion = "broken-v2"
    assert scorer.score([make_article(2)]).scored[0].model_version == "v1"


def test_no_model_is_a_clear_error(metrics):
    with pytest.raises(NoModelError, match="no champion"):
        BatchScorer(FakeModels(None), metrics).score([make_article(1)])


def test_a_poison_article_fails_alone(metrics):
    scorer = BatchScorer(FakeModels(fail_on="poison"), metrics)
    result = scorer.score(
        [make_article(1, "fine"), make_article(2, "poison pill"), make_article(3)]
    )
    assert [a.id for a in result.scored] == [make_article(1).id, make_article(3).id]
    assert [a.id for a, _ in result.failed] == [make_article(2).id]
    assert "cannot score" in result.failed[0][1]


def test_a_prediction_breaking_the_contract_is_reported(metrics):
    class Bad(KeywordScorer):
        def predict(self, texts):
            return [
                p.__class__(p.topic, p.topic_probs, "furious", p.sentiment_probs)
                for p in super().predict(texts)
            ]

    models = FakeModels()
    models.load = lambda version: Bad(version)
    result = BatchScorer(models, metrics).score([make_article(1)])
    assert result.scored == [] and "invalid prediction" in result.failed[0][1]

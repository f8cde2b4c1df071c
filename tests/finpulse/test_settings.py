import pytest

from app.settings import ConfigError, Settings, load_settings, to_toml


def test_defaults_bind_loopback_and_need_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    s = load_settings()
    assert s.metrics.host == "127.0.0.1"
    assert s.kafka.bootstrap_servers.startswith("127.0.0.1:")
    assert s.elasticsearch.url.startswith("http://127.0.0.1:")
    assert s.store.backend == "sqlite"


def test_toml_then_env_precedence(tmp_path, monkeypatch):
    cfg = tmp_path / "f.toml"
    cfg.write_text('[kafka]\npartitions = 8\nraw_topic = "raw.file"\n[stream]\nbatch_size = 7\n')
    monkeypatch.setenv("FINPULSE_KAFKA__PARTITIONS", "12")
    s = load_settings(cfg)
    assert s.kafka.partitions == 12  # env beats file
    assert s.kafka.raw_topic == "raw.file"  # file beats default
    assert s.stream.batch_size == 7
    assert s.kafka.scored_topic == "news.scored"  # untouched default


def test_default_file_and_env_var_pointer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finpulse.toml").write_text("[kafka]\npartitions = 3\n")
    assert load_settings().kafka.partitions == 3
    other = tmp_path / "other.toml"
    other.write_text("[kafka]\npartitions = 5\n")
    monkeypatch.setenv("FINPULSE_CONFIG", str(other))
    assert load_settings().kafka.partitions == 5


def test_plain_constructor_reads_no_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finpulse.toml").write_text("[kafka]\npartitions = 3\n")
    assert Settings().kafka.partitions == 4


@pytest.mark.parametrize(
    ("toml", "key"),
    [
        ("[kafka]\npartitions = 0\n", "kafka.partitions"),
        ('[kafka]\npartitions = "many"\n', "kafka.partitions"),
        ('[kafka]\nsecurity_protocol = "TLS"\n', "kafka.security_protocol"),
        ('[store]\nbackend = "mongo"\n', "store.backend"),
        ("[kafka]\nbootstrap = 1\n", "kafka.bootstrap"),
        ("[nonsense]\nx = 1\n", "nonsense"),
    ],
)
def test_invalid_values_name_the_key(tmp_path, toml, key):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(toml)
    with pytest.raises(ConfigError, match=rf"invalid configuration: {key}: "):
        load_settings(cfg)


def test_broken_toml_and_missing_file(tmp_path):
    cfg = tmp_path / "broken.toml"
    cfg.write_text("[kafka\npartitions = ")
    with pytest.raises(ConfigError, match="invalid configuration file"):
        load_settings(cfg)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_env_value_error_names_key(monkeypatch):
    monkeypatch.setenv("FINPULSE_METRICS__PORT", "99999")
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_settings()


def test_toml_dump_masks_secrets_and_round_trips(tmp_path):
    cfg = tmp_path / "f.toml"
    cfg.write_text('[elasticsearch]\npassword = "hunter2"\n[kafka]\nsasl_password = "pw"\n')
    s = load_settings(cfg)
    text = to_toml(s)
    assert "hunter2" not in text and 'pw"' not in text
    assert 'password = "**********"' in text
    dumped = tmp_path / "dumped.toml"
    dumped.write_text(text)
    again = load_settings(dumped)
    assert again.kafka.partitions == s.kafka.partitions
    assert again.model_dump(exclude={"elasticsearch", "kafka"}) == s.model_dump(
        exclude={"elasticsearch", "kafka"}
    )


def test_config_show_masks_secrets_wherever_they_sit(tmp_path):
    cfg = tmp_path / "f.toml"
    cfg.write_text(
        '[elasticsearch]\nurl = "https://elastic:hunter2@es.example.com:9200"\n'
        "[alerts.notifiers.hook]\n"
        'type = "webhook"\n'
        'url = "https://hooks.example.com/in/T0AB12CD34/B0XY9Z8W7V6U5T4S3R2Q?token=tok3n&x=1"\n'
        'headers = { Authorization = "Bearer b34rer", X-Api-Token = "h3ader", X-Team = "risk" }\n'
        "[alerts.notifiers.am]\n"
        'type = "alertmanager"\n'
        'url = "http://ops:am-pass@127.0.0.1:19095/?key=k3y&sig=s1g"\n'
    )
    text = to_toml(load_settings(cfg))
    for secret in ("hunter2", "tok3n", "b34rer", "h3ader", "am-pass", "k3y", "s1g", "B0XY9Z8W"):
        assert secret not in text, secret
    assert "https://elastic:**********@es.example.com:9200" in text  # where, not what
    assert 'X-Team = "risk"' in text and "x=1" in text and "max_keys_per_scope" in text
    dumped = tmp_path / "dumped.toml"
    dumped.write_text(text)
    assert load_settings(dumped).alerts.notifiers.keys() == {"hook", "am"}

import pytest

from storage.settings import Settings, normalize_database_url


def test_settings_come_from_agentyard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTYARD_REDIS_URL", "redis://example:6379/1")
    monkeypatch.setenv("AGENTYARD_DATABASE_URL", "postgresql://agentyard@example/agentyard")
    monkeypatch.setenv("AGENTYARD_ANTHROPIC_API_KEY", "sk-secret")
    settings = Settings(_env_file=None)
    assert settings.effective_broker_url == "redis://example:6379/1"
    assert "sk-secret" not in repr(settings)


def test_the_broker_defaults_to_redis_but_can_be_set_apart() -> None:
    settings = Settings(
        redis_url="redis://a/0",
        broker_url="redis://b/0",
        database_url="postgresql://u@h/db",
        _env_file=None,
    )
    assert settings.effective_broker_url == "redis://b/0"


def test_a_time_limit_at_or_over_the_visibility_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="TIME_LIMIT_S must be below"):
        Settings(task_time_limit_s=3600, visibility_timeout_s=3600, _env_file=None)


@pytest.mark.parametrize(
    "given", ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg2://u@h/db"]
)
def test_postgres_urls_use_psycopg_3_whatever_their_spelling(given: str) -> None:
    assert normalize_database_url(given) == "postgresql+psycopg://u@h/db"


def test_without_a_database_url_the_default_is_sqlite_under_home(tmp_path: object) -> None:
    settings = Settings(home=tmp_path, _env_file=None)
    assert settings.effective_database_url == f"sqlite:///{tmp_path}/agentyard.db"


def test_settings_with_environment_aliases_also_take_their_own_names_in_python(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("AGENTYARD_OTEL_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    given = Settings(otel_endpoint="http://collector:4318", _env_file=None)
    assert given.otel_endpoint == "http://collector:4318"

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://standard:4318")
    assert Settings(_env_file=None).otel_endpoint == "http://standard:4318"
    monkeypatch.setenv("AGENTYARD_OTEL_ENDPOINT", "http://ours:4318")
    assert Settings(_env_file=None).otel_endpoint == "http://ours:4318"

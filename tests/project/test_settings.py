import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from project.env import broker_config, database_config, env_bool, media_storage, secret_key

REPO = Path(__file__).resolve().parents[2]


def test_database_url_default_is_sqlite_under_var(tmp_path):
    config = database_config(None, tmp_path)
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "db.sqlite3")
    assert config["TEST"]["NAME"] == str(tmp_path / "test_db.sqlite3")  # a file workers can open too


def test_database_url_postgres(tmp_path):
    config = database_config("postgres://alice:s3cret@db.example:6543/labels", tmp_path)
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "alice", "s3cret", "db.example", 6543, "labels")


def test_database_url_garbage_is_a_clear_error(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        database_config("nonsense://what", tmp_path)


def test_broker_default_is_filesystem_with_folders(tmp_path):
    url, options = broker_config(None, tmp_path)
    assert url == "filesystem://"
    assert Path(options["data_folder_in"]).is_dir()
    assert options["data_folder_in"] == options["data_folder_out"]
    assert Path(options["control_folder"]).parent == tmp_path / "broker"  # never ./control in the checkout


def test_filesystem_broker_looks_for_work_more_than_once_a_second(tmp_path):
    # A worker with prefetch 1 runs one task per look: at kombu's 1 s, beat's three sweeps a second
    # (JOB_SWEEP_SECONDS=1) piled up ahead of an import for over a minute.
    assert broker_config(None, tmp_path)[1]["polling_interval"] <= 0.2


def test_beat_sweeps_expire_before_the_next_is_sent(settings):
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert 0 < entry["options"]["expires"] <= entry["schedule"], name


def test_broker_redis_gets_a_long_visibility_timeout(tmp_path):
    url, options = broker_config("redis://127.0.0.1:6379/0", tmp_path)
    assert url == "redis://127.0.0.1:6379/0"
    assert options["visibility_timeout"] >= 6 * 3600


def test_broker_unknown_scheme_is_refused(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="CELERY_BROKER_URL"):
        broker_config("carrier-pigeon://coop", tmp_path)


def test_env_bool_refuses_typos():
    assert env_bool({"DEBUG": "off"}, "DEBUG", True) is False
    with pytest.raises(ImproperlyConfigured):
        env_bool({"DEBUG": "maybe"}, "DEBUG", True)


def test_secret_key_generated_once_for_local_use(tmp_path):
    first = secret_key({}, True, tmp_path)
    assert len(first) > 40 and secret_key({}, True, tmp_path) == first


def test_secret_key_is_the_same_for_processes_starting_together(tmp_path):
    # `make demo` starts the web server and a worker at once; both must sign with one key.
    # Each process imports first, then waits for the same moment to ask for the key.
    code = ("import sys, time, pathlib; from project.env import secret_key; time.sleep(float(sys.argv[2]) - time.time()); "
            "print(secret_key({}, True, pathlib.Path(sys.argv[1])))")
    start = str(time.time() + 2)
    processes = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path), start], cwd=REPO, stdout=subprocess.PIPE,
                                  text=True) for _ in range(8)]
    keys = {process.communicate()[0].strip() for process in processes}
    assert len(keys) == 1 and len(keys.pop()) > 40
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]  # no drafts left behind


def test_secret_key_is_written_where_hard_links_are_not_allowed(tmp_path, monkeypatch):
    def no_links(source, target):
        raise PermissionError("Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    first = secret_key({}, True, tmp_path)
    assert len(first) > 40 and secret_key({}, True, tmp_path) == first
    assert [path.name for path in tmp_path.iterdir()] == ["secret_key"]


def test_secret_key_required_in_production(tmp_path):
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY must be set"):
        secret_key({}, False, tmp_path)


def test_production_mode_refuses_to_start_without_secret_key(tmp_path):
    env = {**os.environ, "DEBUG": "0", "VAR_DIR": str(tmp_path)}
    env.pop("SECRET_KEY", None)
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_production_mode_starts_with_secret_key(tmp_path):
    env = {**os.environ, "DEBUG": "0", "VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 60}
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=REPO, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_celery_is_configured_for_safe_redelivery():
    from project.celery import app

    conf = app.conf
    assert conf.task_acks_late and conf.task_reject_on_worker_lost
    assert conf.worker_prefetch_multiplier == 1
    assert conf.accept_content == ["json"] and conf.task_serializer == "json"
    assert {q.name for q in conf.task_queues} == {"default", "inference", "training"}
    assert conf.task_soft_time_limit < conf.task_time_limit
    assert app.amqp.router.route({}, "inference.tasks.inference_chunk_execute")["queue"].name == "inference"
    assert app.amqp.router.route({}, "training.tasks.training_run_execute")["queue"].name == "training"


def test_media_storage_default_is_the_filesystem():
    assert media_storage(None)["BACKEND"] == "django.core.files.storage.FileSystemStorage"
    assert media_storage("")["BACKEND"] == "django.core.files.storage.FileSystemStorage"


def test_media_storage_s3_bucket_and_prefix():
    config = media_storage("s3://labels.example-1/team/media/")
    assert config["BACKEND"] == "storages.backends.s3.S3Storage"
    options = config["OPTIONS"]
    assert (options["bucket_name"], options["location"]) == ("labels.example-1", "team/media")
    assert options["file_overwrite"] is False and options["default_acl"] is None
    assert media_storage("s3://labels")["OPTIONS"]["location"] == ""


@pytest.mark.parametrize("url, message", [
    ("gs://labels", "not supported"),
    ("s3:/labels", "not supported"),
    ("s3://Labels_Bucket", "not an S3 bucket name"),
    ("s3://", "not an S3 bucket name"),
])
def test_media_storage_refuses_what_it_cannot_use(url, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        media_storage(url)


def deploy_check(**env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--tag", "storage"], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True)


def test_deploy_check_stores_and_removes_a_file_in_the_bucket(s3_media):
    result = deploy_check(**s3_media.worker_env)
    assert result.returncode == 0, result.stderr
    assert s3_media.keys() == []  # the probe file is deleted again


def test_deploy_check_names_a_missing_bucket(s3_media):
    result = deploy_check(MEDIA_STORAGE="s3://no-such-bucket-here/media")
    assert result.returncode != 0
    assert "project.E001" in result.stderr and "NoSuchBucket" in result.stderr, result.stderr


def test_every_task_celery_beat_runs_exists():
    from django.conf import settings

    from project.celery import app

    app.loader.import_default_modules()  # the apps' tasks modules, as a worker imports them
    assert {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()} <= set(app.tasks)
    assert "webhooks.tasks.webhook_deliveries_sweep" in app.tasks


@pytest.mark.parametrize("env, backend, on, tls, site", [
    ({}, "console", "True", "True", "http://127.0.0.1:8000"),  # a local install: printed by the worker
    ({"DEBUG": "0"}, "dummy", "False", "True", ""),  # production without a mail server: off
    ({"DEBUG": "0", "EMAIL_HOST": "smtp.example", "SITE_URL": "https://labels.example/"}, "smtp", "True", "True",
     "https://labels.example"),
    ({"DEBUG": "0", "EMAIL_HOST": "smtp.example", "EMAIL_PORT": "465"}, "smtp", "True", "False", ""),
])
def test_e_mail_follows_the_environment(tmp_path, env, backend, on, tls, site):
    clean = {key: value for key, value in os.environ.items() if not key.startswith(("EMAIL_", "SITE_URL", "DEBUG"))}
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.EMAIL_BACKEND, s.EMAIL_NOTIFICATIONS, s.EMAIL_USE_TLS, s.SITE_URL or '-')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env={
        **clean, "VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 50, "DJANGO_SETTINGS_MODULE": "project.settings", **env})
    assert result.returncode == 0, result.stderr
    printed_backend, printed_on, printed_tls, printed_site = result.stdout.split()
    assert printed_backend == f"django.core.mail.backends.{backend}.EmailBackend"
    assert (printed_on, printed_tls, printed_site) == (on, tls, site or "-")


def test_the_deploy_check_warns_of_e_mail_links_without_a_site_url(settings):
    from project.checks import email_links_work

    settings.EMAIL_NOTIFICATIONS, settings.SITE_URL = True, ""
    assert [w.id for w in email_links_work(None)] == ["project.W001"]
    settings.SITE_URL = "https://labels.example"
    assert email_links_work(None) == []
    settings.EMAIL_NOTIFICATIONS, settings.SITE_URL = False, ""
    assert email_links_work(None) == []


def test_import_buckets_must_be_s3_prefixes():
    from project.env import import_buckets

    assert import_buckets(["s3://cams/site-a", "s3://cams"]) == ["s3://cams/site-a", "s3://cams"]
    for bad in ("https://cams.s3.amazonaws.com/a", "s3://Cams/a", "/srv/frames", "s3://"):
        with pytest.raises(ImproperlyConfigured, match="IMPORT_BUCKETS"):
            import_buckets([bad])


def test_a_heartbeat_slower_than_the_sweepers_patience_is_an_error(settings):
    from project.checks import job_heartbeat_fits

    assert job_heartbeat_fits(None) == []
    settings.JOB_STALE_MINUTES, settings.JOB_HEARTBEAT_SECONDS = 1, 45
    assert [e.id for e in job_heartbeat_fits(None)] == ["project.E003"]

from django.apps import AppConfig


class WorkersConfig(AppConfig):
    name = "workers"
    verbose_name = "Workers"

    def ready(self) -> None:
        from celery import signals

        from workers import presence

        # Sent in the worker's main process only: the web server and management commands never beat.
        signals.worker_ready.connect(presence.presence_start, dispatch_uid="workers.presence_start")
        signals.worker_shutdown.connect(presence.presence_stop, dispatch_uid="workers.presence_stop")

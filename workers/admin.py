from datetime import datetime

from django.contrib import admin
from django.utils import timezone

from project.admin_base import ViewOnlyAdmin
from workers.models import Worker


@admin.register(Worker)
class WorkerAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """The workers write these rows themselves (workers/presence.py); a machine gone for good may be deleted."""

    list_display = ["name", "queue_list", "alive", "running", "seen_at", "started_at", "pid"]
    search_fields = ["name"]
    readonly_fields = [field.name for field in Worker._meta.fields]

    @admin.display(description="queues")
    def queue_list(self, worker: Worker) -> str:
        return ", ".join(worker.queues)

    @admin.display(boolean=True, description="running")
    def alive(self, worker: Worker) -> bool:
        return worker.is_alive

    @admin.display(description="tasks")
    def running(self, worker: Worker) -> str:
        if not worker.tasks:
            return "free" if worker.is_alive else "–"
        return "; ".join(f"{task['name'].rsplit('.', 1)[-1]}({', '.join(map(str, task['args']))})"
                         + (f" since {timezone.localtime(datetime.fromisoformat(task['since'])):%H:%M:%S}"
                            if task.get("since") else "") for task in worker.tasks)

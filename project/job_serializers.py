"""What every background job's REST shape shares beyond its model's fields."""
from rest_framework import serializers


class JobRunSerializer(serializers.ModelSerializer):
    """Base of each job kind's serializer (a ModelSerializer of a project.jobs.JobRun); list "percent" and
    "waiting" in its Meta.fields."""

    percent = serializers.FloatField(read_only=True)
    waiting = serializers.CharField(read_only=True, help_text=(
        "For a job queued a minute or more (JOB_WAIT_NOTICE_SECONDS): how long, and the queue whose worker it waits "
        "for; empty otherwise."))

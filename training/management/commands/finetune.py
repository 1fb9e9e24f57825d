"""manage.py finetune PROJECT: queue a fine-tune on the reviewed labels and follow its progress."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inference.architectures import ARCHITECTURES
from project.cli import follow_run, project_from_arg
from training.services import training_run_start


class Command(BaseCommand):
    help = "Fine-tune the active model on all reviewed labels of a project, on the Celery training workers."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project id or exact name.")
        parser.add_argument("--architecture", choices=sorted(ARCHITECTURES),
                            help="Default: the active model's.")
        parser.add_argument("--epochs", type=int)
        parser.add_argument("--batch-size", type=int)
        parser.add_argument("--image-size", type=int)
        parser.add_argument("--learning-rate", type=float)
        parser.add_argument("--no-wait", action="store_true", help="Queue the run and return at once.")

    def handle(self, *args, project, no_wait, **options):
        project = project_from_arg(project)
        params = {name: options[name] for name in ("architecture", "epochs", "batch_size", "image_size",
                                                   "learning_rate") if options.get(name) is not None}
        try:
            run = training_run_start(project=project, user=None, params=params)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Training run #{run.pk}: {run.architecture}, queued; a worker freezes the reviewed "
                          "labels when it starts.")
        if no_wait:
            return
        run = follow_run(run, self.stdout, f"Training #{run.pk}")
        if run.snapshot is not None:
            self.stdout.write(f"Trained on snapshot {run.snapshot.content_hash[:12]} ({len(run.snapshot.train_image_ids)} "
                              f"training, {len(run.snapshot.holdout_image_ids)} holdout images).")
        if run.status == "failed":
            raise CommandError(f"Training failed: {run.error}")
        if run.is_finished:
            self.stdout.write(self.style.SUCCESS(f"Training {run.status}; new version: {run.result_version or 'none'}."))
            if run.comparison:
                self.stdout.write(f"Comparison on the holdout: {run.comparison}")

"""Browser actions for the learning loop: fine-tune, cancel, promote or roll back a version."""
from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.urls import reverse
from django.views.decorators.http import require_POST

from inference import selectors as inference_selectors
from inference.models import ModelExport, ModelVersion, ModelVersionDeletion
from inference.model_exports import check_in_words
from inference.services import (
    model_version_activate, model_version_create, model_version_from_coco, project_settings_update,
)
from review.access import member_of, object_for_member, project_for_member
from review.forms import cleaned_or_refused
from review.models import Image, Role
from review.tags import project_tags
from training.forms import CocoStartForm, WeightsUploadForm
from training.models import TrainingRun
from training.selectors import model_version_operating_points, model_versions_compare
from training.serializers import OperatingPointsQuerySerializer
from training.services import training_run_cancel, training_run_start


@login_required
@require_GET
def project_models(request: HttpRequest, project_id: int) -> HttpResponse:
    """Model versions with lineage and holdout scores, and each training run with its live loss curve."""
    membership = member_of(request.user, project_id)
    project = membership.project
    versions = list(inference_selectors.model_versions(project=project).select_related("training_run__snapshot"))
    runs = list(TrainingRun.objects.filter(project=project).select_related("base_version", "result_version")
                .order_by("-created_at")[:10])
    deletions = list(ModelVersionDeletion.objects.filter(project=project).order_by("-created_at", "-id")[:10])
    deleting = {d.model_version_id for d in deletions if not d.is_finished}
    exports = list(ModelExport.objects.filter(project=project).order_by("-created_at", "-id")[:10])
    for export in exports:
        export.check_said = check_in_words(export.check_result)
    # Each version's file to download, or its export still going (however old): a new one only when neither is there.
    usable = list(ModelExport.objects.filter(model_version__in=versions, status__in=("queued", "running", "succeeded"))
                  .order_by("-created_at", "-id"))
    for version in versions:
        version.gain = _gain_over_parent(version)
        version.being_deleted = version.pk in deleting
        version.onnx = next((e for e in usable if e.model_version_id == version.pk
                             and e.class_names == version.class_names), None)
    return render(request, "training/models.html", {
        "project": project,
        "versions": versions,
        "deletions": deletions,
        "exports": exports,
        "runs": runs,
        "can_manage": membership.has_role(Role.MANAGER),
        "upload_form": WeightsUploadForm(),
        "coco_form": CocoStartForm(initial={"activate": not any(v.is_active for v in versions)},
                                   class_names=_class_names(project)),
        "coco_dir": settings.COCO_WEIGHTS_DIR,
        "versions_data": [{"number": v.number, "map": v.metrics.get("map"), "ap50": v.metrics.get("ap50")}
                          for v in reversed(versions) if v.metrics],
        "training_data": [{"id": r.pk, "loss_history": r.loss_history} for r in runs],
    })


def _now_active(activated: bool) -> str:
    return " It is now the active model: run inference from the project page." if activated else ""


def _class_names(project) -> list[str]:
    return list(project.label_classes.order_by("index").values_list("name", flat=True))


def _gain_over_parent(version) -> str:
    """What the fine-tune that made `version` gained over the model it started from, on the same holdout images.

    Each version's own holdout mAP is measured on the images reviewed when it was trained, which grow
    from one version to the next; only this comparison says whether the new one is better.
    """
    run = getattr(version, "training_run", None)
    comparison = (run.comparison or {}) if run else {}
    new, old = comparison.get("new"), comparison.get("active")
    if not new or not old:
        return ""
    gain = (f"{new['map'] - old['map']:+.3f} mAP over v{old['version']} ({old['map']:.3f} → {new['map']:.3f} on the "
            f"same {new.get('images', '?')} images)")
    if interval := comparison.get("gain_interval"):  # runs since 2026-12 (training.evaluation.map_gain_interval)
        low, high = interval
        gain += f"; 90% of resamples: {low:+.3f} to {high:+.3f}" + (", may be chance" if low <= 0 <= high else "")
    return gain


def _back(project_id: int) -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("review:project_detail", args=[project_id]))


@login_required
@require_POST
def model_version_upload(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Bring in a model trained elsewhere (the one deployed today, say) as the project's next version."""
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    form = WeightsUploadForm(request.POST, request.FILES)
    try:
        data = cleaned_or_refused(form)
        version = model_version_create(
            project=project, architecture=data["architecture"], weights=data["weights"].read(),
            class_names=data["class_names"], user=request.user, note=data["note"], activate=data["activate"])
    except ValidationError as exc:
        messages.error(request, f"The weights were not added: {' '.join(exc.messages)}")
    else:
        messages.success(request, f"Added {version} with classes {', '.join(version.class_names)}."
                                  + _now_active(data["activate"]))
    return HttpResponseRedirect(reverse("training:project_models", args=[project.pk]))


@login_required
@require_POST
def model_version_from_coco_view(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    """Start a project's models from torchvision's COCO weights (those this server has)."""
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    form = CocoStartForm(request.POST, class_names=_class_names(project))
    try:
        data = cleaned_or_refused(form)
        version = model_version_from_coco(project=project, architecture=data["architecture"], user=request.user,
                                          activate=data["activate"], classes=form.classes())
    except ValidationError as exc:
        messages.error(request, f"No version was added: {' '.join(exc.messages)}")
    else:
        messages.success(request, f"Added {version}: {version.note}" + _now_active(data["activate"]))
    return HttpResponseRedirect(reverse("training:project_models", args=[project.pk]))


@login_required
@require_POST
def training_start(request: HttpRequest, project_id: int) -> HttpResponseRedirect:
    project = project_for_member(request.user, project_id, role=Role.MANAGER)
    params = {}
    if epochs := request.POST.get("epochs", "").strip():
        if not (epochs.isascii() and epochs.isdigit() and len(epochs) <= 6):  # "²" is a digit to str.isdigit
            messages.error(request, f"Epochs must be a positive whole number, not {epochs[:20]!r}.")
            return _back(project.pk)
        params["epochs"] = int(epochs)
    try:
        run = training_run_start(project=project, user=request.user, params=params)
        messages.success(request, f"Training run #{run.pk} queued ({run.architecture}): it trains on the images "
                                  "reviewed when a worker starts it.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(project.pk)


@login_required
@require_POST
def training_cancel(request: HttpRequest, run_id: int) -> HttpResponseRedirect:
    run = object_for_member(request.user, TrainingRun.objects.all(), run_id, role=Role.MANAGER)
    try:
        training_run_cancel(run=run)
        messages.info(request, f"Training run #{run.pk} is stopping.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(run.project_id)


@login_required
@require_POST
def model_version_promote(request: HttpRequest, version_id: int) -> HttpResponseRedirect:
    """Promote or roll back by hand: make this version the active one."""
    version = object_for_member(request.user, ModelVersion.objects.all(), version_id, role=Role.MANAGER)
    try:
        model_version_activate(version=version)
        messages.success(request, f"{version} is now the active model.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return _back(version.project_id)


@login_required
@require_POST
def review_threshold_use(request: HttpRequest, version_id: int) -> HttpResponseRedirect:
    """From a version's threshold page: review the project at the threshold chosen there."""
    version = object_for_member(request.user, ModelVersion.objects.select_related("project"), version_id,
                                role=Role.MANAGER)
    try:  # forms.FloatField refuses text, NaN and infinity; the model's constraint the range
        threshold = forms.FloatField().clean(request.POST.get("threshold"))
        project_settings_update(project=version.project, user=request.user, score_threshold=threshold)
    except ValidationError as exc:
        messages.error(request, f"The review threshold was not changed: {' '.join(exc.messages)}")
    else:
        messages.success(request, f"{version.project.name} is reviewed at ≥ {version.project.score_threshold:.4g} now: "
                                  "the editor shows those boxes; the queue and error review follow once the rerank "
                                  "on the project page is done.")
    return HttpResponseRedirect(reverse("training:thresholds", args=[version.pk]))


@login_required
@require_GET
def model_versions_compare_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Two versions on the same reviewed holdout images: scores side by side, the images fixed and broken."""
    project = project_for_member(request.user, project_id)
    versions = list(inference_selectors.model_versions(project=project))
    by_id = {str(v.pk): v for v in versions}
    second = by_id.get(request.GET.get("second", "")) or next((v for v in versions if v.is_active), None) or (
        versions[0] if versions else None)
    first = by_id.get(request.GET.get("first", "")) or (second.parent if second and second.parent else None) or next(
        (v for v in versions if second and v.number < second.number), None)
    comparison, tags = None, project_tags(project)
    tag = request.GET.get("tag") if request.GET.get("tag") in tags else None
    if first and second and first != second:
        comparison = model_versions_compare(first=first, second=second, score_threshold=project.score_threshold,
                                            tag=tag)
        images = Image.objects.in_bulk([row["image"] for row in comparison["fixed"] + comparison["broke"]])
        for row in comparison["fixed"] + comparison["broke"]:
            row["name"] = images[row["image"]].original_name
        classes = sorted({name for v in comparison["versions"] for name in v["per_class"]})
        comparison["per_class"] = [(name, [v["per_class"].get(name) for v in comparison["versions"]])
                                   for name in classes]
    return render(request, "training/compare.html", {
        "project": project, "versions": versions, "first": first, "second": second, "comparison": comparison,
        "tags": tags, "tag": tag,
    })


@login_required
@require_GET
def model_version_thresholds(request: HttpRequest, version_id: int) -> HttpResponse:
    """Which score threshold to deploy a version at: precision, recall and F1 per threshold, per class."""
    version = object_for_member(request.user, ModelVersion.objects.select_related("project"), version_id)
    query = OperatingPointsQuerySerializer(data=request.GET)
    errors = [] if query.is_valid() else [f"{field}: {' '.join(map(str, messages_))}"  # the page stays on best F1
                                          for field, messages_ in query.errors.items()]
    rule = query.validated_data if not errors else {"choose": "f1", "target": None}
    result = model_version_operating_points(version=version, **rule)
    confusion = result["confusion"]
    chosen = result["curves"][0]["chosen"] if result["curves"] else None  # the pooled curve comes first
    names, counts = _confusion_without_empty_classes(confusion) if confusion else ([], [])
    return render(request, "training/thresholds.html", {
        "project": version.project, "version": version, "result": result, "errors": errors,
        "can_manage": member_of(request.user, version.project_id).has_role(Role.MANAGER),
        "review_at": chosen["threshold"] if chosen and 0.01 <= chosen["threshold"] <= 0.99 else None,
        "choose": request.GET.get("choose", "f1"), "target": request.GET.get("target", ""),
        "confusion_columns": [*names, "missed"] if confusion else [],
        "confusion_rows": list(zip([*names, "nothing there"], counts)),
        "confusion_left_out": len(confusion["classes"]) - len(names) if confusion else 0,
    })


def _confusion_without_empty_classes(confusion: dict) -> tuple[list[str], list[list[int]]]:
    """The page's matrix without the classes no human box and no kept box has (an 80-class project's
    holdout rarely holds them all): rows and columns lose the same ones, so the diagonal stays the diagonal."""
    classes, counts = confusion["classes"], confusion["counts"]  # rows: classes + nothing there; columns: + missed
    kept = [k for k in range(len(classes)) if any(counts[k]) or any(row[k] for row in counts)]
    return ([classes[k] for k in kept],
            [[row[k] for k in kept] + [row[-1]] for row in [counts[k] for k in kept] + [counts[-1]]])

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

import project.converters  # noqa: F401  (the <id:...> converter)

urlpatterns = [
    # Browsers ask for it on pages that name no icon (the admin, the API's docs): ours, not a 404.
    path("favicon.ico", RedirectView.as_view(url=static("review/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("project.accounts")),
    path("api/v1/", include(("project.api_urls", "api"))),
    path("", include("review.urls")),
    path("", include("inference.urls")),
    path("", include("training.urls")),
    path("", include("datasets.urls")),
    path("", include("webhooks.urls")),
]

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

import project.converters  # noqa: F401  (the <id:...> converter)

urlpatterns = [
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

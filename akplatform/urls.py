from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from infra.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("agents_app.api.urls")),
]

handler400 = "agents_app.api.errors.json_bad_request"
handler404 = "agents_app.api.errors.json_not_found"
handler500 = "agents_app.api.errors.json_server_error"

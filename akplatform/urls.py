from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from akplatform.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("metrics", metrics_view, name="metrics"),
    path("", include("agents_app.api.urls")),
]

handler400 = "akplatform.exceptions.json_bad_request"
handler404 = "akplatform.exceptions.json_not_found"
handler500 = "akplatform.exceptions.json_server_error"

from django.urls import path

from agents_app.api import views

urlpatterns = [
    path("run", views.RunView.as_view(), name="run"),
    path("api/v1/chat", views.ChatView.as_view(), name="chat"),
    path("runs/<str:run_id>", views.RunDetailView.as_view(), name="run-detail"),
    path("runs/<str:run_id>/events", views.RunEventsView.as_view(), name="run-events"),
    path("runs/<str:run_id>/cancel", views.RunCancelView.as_view(), name="run-cancel"),
    path("sessions/<str:session_id>/runs", views.SessionRunsView.as_view(), name="session-runs"),
    path("sessions/<str:session_id>", views.SessionView.as_view(), name="session"),
    path("sessions/<str:session_id>/messages", views.SessionMessagesView.as_view(), name="session-messages"),
    path("agents", views.AgentsView.as_view(), name="agents"),
    path("agents/<str:name>", views.AgentView.as_view(), name="agent"),
    path("secrets", views.SecretsView.as_view(), name="secrets"),
    path("secrets/<str:name>", views.SecretView.as_view(), name="secret"),
    path("health", views.HealthView.as_view(), name="health"),
]

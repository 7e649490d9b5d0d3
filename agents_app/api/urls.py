from django.urls import path

from agents_app.api.views import agents, health, limits, runs, schedules, sessions, usage

urlpatterns = [
    path("run", runs.RunView.as_view(), name="run"),
    path("api/v1/chat", runs.ChatView.as_view(), name="chat"),
    path("runs/<str:run_id>", runs.RunDetailView.as_view(), name="run-detail"),
    path("runs/<str:run_id>/events", runs.RunEventsView.as_view(), name="run-events"),
    path("runs/<str:run_id>/cancel", runs.RunCancelView.as_view(), name="run-cancel"),
    path("runs/<str:run_id>/resume", runs.RunResumeView.as_view(), name="run-resume"),
    path("sessions/<str:session_id>/runs", sessions.SessionRunsView.as_view(), name="session-runs"),
    path("sessions/<str:session_id>", sessions.SessionView.as_view(), name="session"),
    path("sessions/<str:session_id>/messages", sessions.SessionMessagesView.as_view(), name="session-messages"),
    path("agents", agents.AgentsView.as_view(), name="agents"),
    path("agents/<str:name>", agents.AgentView.as_view(), name="agent"),
    path("secrets", agents.SecretsView.as_view(), name="secrets"),
    path("secrets/<str:name>", agents.SecretView.as_view(), name="secret"),
    path("schedules", schedules.SchedulesView.as_view(), name="schedules"),
    path("schedules/<str:schedule_id>", schedules.ScheduleView.as_view(), name="schedule"),
    path("schedules/<str:schedule_id>/runs", schedules.ScheduleRunsView.as_view(), name="schedule-runs"),
    path("usage", usage.UsageView.as_view(), name="usage"),
    path("limits", limits.LimitsView.as_view(), name="limits"),
    path("health", health.HealthView.as_view(), name="health"),
]

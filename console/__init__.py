"""The operators' console: Django's admin with the pages that show sessions_app's and agents_app's
rows side by side (its home page, tenants, end users, sessions, threads with their runs). It may
import both apps; neither imports it."""

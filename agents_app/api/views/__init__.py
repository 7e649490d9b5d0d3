"""The API's views, one module per resource: thin, they validate, call a service and shape the answer."""

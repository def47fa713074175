"""HTTP: the JSON API, OpenAPI, pages."""

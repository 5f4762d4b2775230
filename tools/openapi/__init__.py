"""Generator of the OpenAPI 3.1 document (src/openplatform/web/openapi.json)."""

"""The order API for shop platforms (`views`) and its OpenAPI document (`openapi`)."""

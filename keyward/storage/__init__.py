"""Persistence: engine and pragmas (`engine`), typed models (`models`), schema versions (`migrate`),
and the query modules (`store`, `usage_queries`, `rotation_queries`)."""

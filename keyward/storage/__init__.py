"""Persistence: engine and pragmas (`engine`), typed models (`models`), schema versions (`migrate`),
and the query modules (`store`, `usage_queries`, `rotation_queries`, `secret_queries`). Key strings
are sealed at rest by `keyward.sealing` when a master key exists (`keyward.master_key`)."""

"""Server-side apply and field ownership (``metadata.managedFields``).

Kubernetes records, for every object, which manager owns which fields, and
uses it to merge applied configurations without trampling other writers.
This package rebuilds that over JSON-shaped dicts and the kinds' schemas:

- :mod:`.fieldset` -- sets of field paths and their FieldsV1 form;
- :mod:`.typed` -- schema-aware walks (field sets, comparison, removal);
- :mod:`.merge` -- the structured merge of a configuration into an object;
- :mod:`.managed` -- the managedFields entries, manager names;
- :mod:`.updater` -- :func:`apply_config` and :func:`track_update`.
"""

from kubeling.api.apply.fieldset import (
    FieldSet,
    Path,
    PathElement,
    field_pe,
    from_fields_v1,
    index_pe,
    key_pe,
    path_string,
    to_fields_v1,
    value_pe,
)
from kubeling.api.apply.managed import (
    default_manager,
    reconcile_sent_managed_fields,
)
from kubeling.api.apply.merge import merge
from kubeling.api.apply.typed import compare, fieldset_from_object, remove_items
from kubeling.api.apply.updater import apply_config, conflict_error, track_update

__all__ = [
    "FieldSet",
    "Path",
    "PathElement",
    "apply_config",
    "compare",
    "conflict_error",
    "default_manager",
    "field_pe",
    "fieldset_from_object",
    "from_fields_v1",
    "index_pe",
    "key_pe",
    "merge",
    "path_string",
    "reconcile_sent_managed_fields",
    "remove_items",
    "to_fields_v1",
    "track_update",
    "value_pe",
]

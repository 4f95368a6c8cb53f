"""Inserting plain rows without model instances: the bulk writers (the ERP import, the SLA sweep)
write thousands of rows at once, where building and preparing a model instance per row was most
of their time."""

from __future__ import annotations

from django.db import connection, models
from django.db.models import F, Lookup, Q
from django.utils import timezone

_COLUMN_TYPES: dict[str, list[int]] = {}  # "table (columns)" → type oids; the schema is fixed while the process runs


def insert_rows(model: type[models.Model], columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
    """Insert plain rows (values in the order of `columns`, field attnames; other fields take their
    defaults) and return the new ids in row order. On PostgreSQL this is COPY, with the ids drawn
    from the table's sequence up front: no model instances, no per-value preparation, no giant
    INSERT statement. Elsewhere (SQLite in the embedded mode) it is bulk_create."""
    if not rows:
        return []
    if connection.vendor != "postgresql":
        return _bulk_create(model, columns, rows)
    opts = model._meta
    with connection.cursor() as cursor, connection.wrap_database_errors:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [opts.db_table, opts.pk.column, len(rows)],
        )
        ids = [pk for (pk,) in cursor.fetchall()]
        _copy(cursor, model, columns, rows, ids)
    return ids


def write_rows(model: type[models.Model], columns: tuple[str, ...], rows: list[tuple]) -> int:
    """insert_rows for a caller that needs no ids (the SLA sweep's events and alerts): the table's
    identity default numbers the rows in the COPY, without a round trip to draw them first.
    Returns how many rows were written."""
    if not rows:
        return 0
    if connection.vendor != "postgresql":
        return len(_bulk_create(model, columns, rows))
    with connection.cursor() as cursor, connection.wrap_database_errors:
        _copy(cursor, model, columns, rows)
    return len(rows)


def _bulk_create(model: type[models.Model], columns: tuple[str, ...], rows: list[tuple]) -> list[int]:
    objects = [model(**dict(zip(columns, row, strict=True))) for row in rows]
    model.objects.bulk_create(objects, batch_size=500)
    return [obj.pk for obj in objects]


def _copy(cursor, model: type[models.Model], columns: tuple[str, ...], rows: list[tuple], ids: list[int] | None = None) -> None:
    """COPY the rows in, with these ids, or numbered by the table's identity default."""
    opts = model._meta
    given = [opts.get_field(name) for name in columns]
    # A generated column (Order.platform_due_at) is the database's to fill, never written.
    rest = [f for f in opts.concrete_fields if not f.primary_key and not f.generated and f.attname not in columns]
    now = timezone.now()
    tail = tuple(now if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False) else f.get_default() for f in rest)
    quote = connection.ops.quote_name
    table = quote(opts.db_table)
    names = ", ".join(quote(f.column) for f in [*([opts.pk] if ids is not None else []), *given, *rest])
    # Binary COPY with the column types read from the table: psycopg dumps each Python value
    # (Decimal, aware datetime, dict for jsonb) for its column; text COPY measured the same.
    key = f"{table} ({names})"
    types = _COLUMN_TYPES.get(key)
    if types is None:
        cursor.execute(f"SELECT {names} FROM {table} LIMIT 0")  # noqa: S608 - table and column names come from the models, not input
        types = _COLUMN_TYPES[key] = [column.type_code for column in cursor.description]
    with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        if ids is not None:
            for pk, row in zip(ids, rows, strict=True):
                copy.write_row((pk, *row, *tail))
        else:
            for row in rows:
                copy.write_row((*row, *tail))


class _EqualsAny(Lookup):
    """`column = ANY(%s)` with one array parameter (PostgreSQL): thousands of values (an import
    chunk's order numbers, a sweep's order ids) then cost Django and psycopg one placeholder
    instead of thousands."""

    lookup_name = "equals_any"
    prepare_rhs = False

    def get_prep_lookup(self):
        return list(self.rhs)

    def as_sql(self, compiler, connection):
        lhs, params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*params, self.rhs)


def among(field: str, values: list):
    """The filter `field IN values`."""
    return _EqualsAny(F(field), values) if connection.vendor == "postgresql" else Q(**{f"{field}__in": values})

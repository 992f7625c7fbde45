{#- Implementation of the generic test `unique_key` (tests/generic/unique_key.sql); dispatched so an adapter can override it. -#}
{% macro default__test_unique_key(model, columns, written_by_last_build) %}
{%- set columns = [columns] if columns is string else columns -%}
{%- set stamped = written_by_last_build and '_cio_staged_at' in (cio_sync.relation_columns(model) | map(attribute='name') | map('lower') | list) -%}
{%- set keys = columns | join(', ') -%}
{%- set not_null = columns | join(' is not null and ') ~ ' is not null' -%}
{#- On PostgreSQL the first key is grouped as its index orders it (lookup_index: in byte
    order), so that the index is read in order rather than every key hashed and spilled to
    disk (after a full build of int_cio__orders, 10 million keys: 8 s against 16 s). -#}
{%- set first = cio_sync.lookup_column(model, columns[0]) if target.type == 'postgres' else none -%}
{%- set grouped = ([first ~ ' as ' ~ columns[0]] + columns[1:]) | join(', ') if first else keys -%}
{%- set positions = range(1, columns | length + 1) | join(', ') -%}
{%- if stamped %}
{#- The last build's time as a literal, asked when the test runs (a subquery there would have
    PostgreSQL expect a third of the table to match and read the whole key index). -#}
{%- set written = '_cio_staged_at >= ' ~ cio_sync.timestamp_value('select max(built_at) from '
    ~ cio_sync.build_log_relation() ~ " where relation_name = '" ~ (model | string | replace("'", "''")) ~ "'") -%}
{%- set held = written | replace('_cio_staged_at >=', '_cio_staged_at <') -%}
{#- Keys written twice by the last build, and keys it wrote that an older row holds too: the
    older rows are found among those of the written keys' first column (through its index on
    PostgreSQL, see rows_with_keys), and only when the table holds older rows at all (after a
    full build it holds none, and nothing is looked up). #}
select {{ grouped }}, count(*) as occurrences
from {{ model }}
where {{ written }} and {{ not_null }}
group by {{ positions }}
having count(*) > 1
union all
select {% for column in columns %}held.{{ column }}{{ ', ' if not loop.last }}{% endfor %}, 1
from {{ cio_sync.rows_with_keys(model, columns[0], 'select ' ~ columns[0] ~ ' from ' ~ model ~ ' where ' ~ written) }} as held
where {{ held | replace('_cio_staged_at', 'held._cio_staged_at') }}
    and exists (select 1 from {{ model }} as older where {{ held | replace('_cio_staged_at', 'older._cio_staged_at') }})
    and exists (
        select 1 from {{ model }} as fresh
        where {% for column in columns %}fresh.{{ first if loop.first and first else column }} = held.{{ column }} and {% endfor %}{{ written | replace('_cio_staged_at', 'fresh._cio_staged_at') }}
    )
{%- else %}
select {{ grouped }}, count(*) as occurrences
from {{ model }}
where {{ not_null }}
group by {{ positions }}
having count(*) > 1
{%- endif %}
{% endmacro %}

{#- On PostgreSQL a key that a unique index holds to one row per key (lookup_index with
    unique=true: the package's intermediate models keyed by order or person) is not read
    again: the index refused any duplicate as the rows were written, and the test would only
    repeat that check (after a full build of int_cio__orders, 10 million keys read in order:
    5.8 s). A table without such an index (built before the package made its index unique, or
    with indexes configured otherwise) is checked as on every adapter. -#}
{% macro postgres__test_unique_key(model, columns, written_by_last_build) %}
{%- set columns = [columns] if columns is string else columns -%}
{%- if cio_sync.unique_index_holds(model, columns) %}
select {{ columns | join(', ') }}, 0 as occurrences from {{ model }} where false
{%- else %}
{{ cio_sync.default__test_unique_key(model, columns, written_by_last_build) }}
{%- endif %}
{% endmacro %}

{% macro redshift__test_unique_key(model, columns, written_by_last_build) %}
{{ cio_sync.default__test_unique_key(model, columns, written_by_last_build) }}
{% endmacro %}

{#- True when a valid unique index of `relation` (PostgreSQL) has only columns among `columns`
    (one on fewer of them holds the combination unique too): a whole, immediate index on plain
    columns, with their types' default operator classes, in deterministic collations, as are
    the columns (equal keys are then equal bytes however they are compared). False for a
    subquery (a test's `where`), when compiling offline, and without one. -#}
{% macro unique_index_holds(relation, columns) -%}
    {%- if not (execute and flags.INTROSPECT) or relation is string -%}{{ return(false) }}{%- endif -%}
    {%- set names = [] -%}
    {%- for column in columns -%}{%- do names.append("'" ~ (column | lower | replace("'", "''")) ~ "'") -%}{%- endfor -%}
    {%- set sql -%}
        select count(*) from pg_index as i
        where i.indrelid = to_regclass('{{ (relation | string) | replace("'", "''") }}')
            and i.indisunique and i.indisvalid and i.indimmediate
            and i.indpred is null and i.indexprs is null and i.indnatts = i.indnkeyatts
            and not exists (
                select 1 from unnest(cast(i.indkey as int2[])) as k (attnum)
                left join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
                where a.attname is null or lower(a.attname) not in ({{ names | join(', ') }})
            )
            and not exists (
                select 1 from unnest(cast(i.indclass as oid[])) as o (opclass_oid)
                inner join pg_opclass as opc on opc.oid = o.opclass_oid
                where not opc.opcdefault
            )
            and not exists (
                select 1 from unnest(cast(i.indcollation as oid[])) as c (collation_oid)
                inner join pg_collation as coll on coll.oid = c.collation_oid
                where not coll.collisdeterministic
            )
            and not exists (
                select 1 from pg_attribute as a
                inner join pg_collation as coll on coll.oid = a.attcollation
                where a.attrelid = i.indrelid and lower(a.attname) in ({{ names | join(', ') }})
                    and not coll.collisdeterministic
            )
    {%- endset -%}
    {{ return(run_query(sql).columns[0].values()[0] > 0) }}
{%- endmacro %}

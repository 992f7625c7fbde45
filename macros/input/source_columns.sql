{#- Columns of a configured input, as {lower-case name: kind}, kind one of
    aware (timestamp with time zone), timestamp, date, time (of day), interval, boolean,
    number, integer, text (every other type: text, uuid, json, ...).
    The kind decides how stage_column converts a value (a timestamptz column is converted
    by its instant, a naive one from cio_source_timezone). Returns none when the warehouse
    cannot be asked (parsing, or compiling with --no-introspect): stage_column then
    assumes naive timestamps and text values. -#}
{% macro source_columns(relation_sql) -%}
    {%- if relation_sql is none or not execute or not flags.INTROSPECT -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set columns = {} -%}
    {%- for column in get_column_schema_from_query('select * from ' ~ relation_sql) -%}
        {%- do columns.update({column.name | lower: cio_sync.column_kind(column.dtype)}) -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}

{% macro column_kind(dtype) -%}
    {%- set t = (dtype or '') | upper -%}
    {%- if 'TZ' in t or 'WITH TIME ZONE' in t -%}{{ return('aware') }}
    {%- elif 'TIMESTAMP' in t or 'DATETIME' in t -%}{{ return('timestamp') }}
    {%- elif t == 'DATE' -%}{{ return('date') }}
    {%- elif t.startswith('TIME') -%}{{ return('time') }}
    {%- elif t.startswith('INTERVAL') -%}{{ return('interval') }}
    {%- elif 'BOOL' in t -%}{{ return('boolean') }}
    {%- elif t in ('INTEGER', 'INT', 'INT2', 'INT4', 'INT8', 'BIGINT', 'SMALLINT', 'TINYINT', 'HUGEINT', 'UBIGINT', 'UINTEGER') -%}{{ return('integer') }}
    {%- elif 'NUMERIC' in t or 'DECIMAL' in t or 'DOUBLE' in t or 'FLOAT' in t or 'REAL' in t or t.startswith('INT') -%}{{ return('number') }}
    {%- else -%}{{ return('text') }}
    {%- endif -%}
{%- endmacro %}

{#- Columns of a built relation, or none when the warehouse cannot be asked (parsing, or
    compiling offline with --no-introspect): tests that inspect columns then check nothing. -#}
{% macro relation_columns(relation) -%}
    {%- if not execute or not flags.INTROSPECT -%}
        {{ return([]) }}
    {%- endif -%}
    {{ return(adapter.get_columns_in_relation(relation)) }}
{%- endmacro %}
